// Every child process the harness starts is tracked here so that, whatever
// happens to the test process (a crash, an uncaught error, the runner killing
// it), none is left running: on exit each one still alive gets SIGKILL.
const live = new Set();

export function trackChild(proc) {
  live.add(proc);
}

export function untrackChild(proc) {
  live.delete(proc);
}

function killAll() {
  for (const p of live) {
    try {
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  live.clear();
}

process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    killAll();
    process.exit(130);
  });
}
