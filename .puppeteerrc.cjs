// memlab (a benchmark peer, dev only) depends on puppeteer, whose postinstall downloads
// Chrome. memguard never drives a browser through puppeteer: skip the download, so
// `npm ci` stays offline-safe and fast.
module.exports = { skipDownload: true };
