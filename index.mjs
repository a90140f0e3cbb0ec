// ESM entry: `node --import memguard app.mjs` or `import memguard from 'memguard'`.
import memguard from './index.js';

export default memguard;
export const snapshot = (reason) => memguard.snapshot(reason);
export const stats = () => memguard.stats();
export const stop = () => memguard.stop();
export const metrics = memguard.metrics;
