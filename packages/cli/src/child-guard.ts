/**
 * Preloaded (`node --require`) into every process the local stack starts:
 * when the stack goes away without stopping it (killed with SIGKILL), the
 * IPC channel closes and the process shuts itself down the normal way
 * instead of living on as an orphan holding its port.
 */
if (process.channel) {
  process.channel.unref();
  process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));
}
