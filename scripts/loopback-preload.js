// Preloaded with `node -r` into kinesis-local, which binds 0.0.0.0 by default:
// every TCP server it opens listens on 127.0.0.1 instead, so nothing we start
// is reachable from beyond this machine.
'use strict';
const net = require('net');
const LOOPBACK = '127.0.0.1';
const listen = net.Server.prototype.listen;

net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (first !== null && typeof first === 'object' && !Array.isArray(first)) {
    // listen(options[, callback]); a unix socket `path` has no host to pin.
    if (first.port !== undefined) args[0] = { ...first, host: LOOPBACK };
  } else if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    // listen(port[, host][, backlog][, callback])
    if (typeof args[1] === 'string') args[1] = LOOPBACK;
    else args.splice(1, 0, LOOPBACK);
  }
  return listen.apply(this, args);
};
