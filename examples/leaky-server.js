// A small HTTP service with a classic leak: every request's session is put
// in a cache that is never pruned. memguard is loaded with `node -r memguard`;
// the service itself has no memguard code at all.
'use strict';
const http = require('node:http');

class UserSession {
  constructor(id, req) {
    this.id = id;
    this.path = req.url;
    this.headers = { ...req.headers };
    this.history = new Array(50).fill(id);
    this.token = `tok-${id}-${'s'.repeat(200)}`;
  }
}

const sessions = new Map(); // the leak: nobody ever deletes from it
let nextId = 0;

function handle(req, res) {
  const id = nextId++;
  sessions.set(id, new UserSession(id, req));
  res.end(`hello ${id}\n`);
}

const server = http.createServer(handle);

// Drive the service with its own traffic so the demo needs nothing else.
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  console.log(`leaky-server: listening on 127.0.0.1:${port}, sending itself requests…`);
  const fire = () =>
    http.get({ host: '127.0.0.1', port, path: '/login', agent }, (res) => {
      res.resume();
      res.on('end', fire);
    });
  for (let i = 0; i < 16; i++) fire();
  setInterval(() => console.log(`leaky-server: ${sessions.size} sessions cached`), 1000).unref();
});
