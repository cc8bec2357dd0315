// Free loopback ports. The kernel picks a free one; we remember what we handed
// out so two servers of one test process never get the same port.
import net from 'node:net';

const handedOut = new Set();

function probe() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort() {
  for (let i = 0; i < 50; i++) {
    const p = await probe();
    if (!handedOut.has(p)) {
      handedOut.add(p);
      return p;
    }
  }
  throw new Error('could not find a free port');
}
