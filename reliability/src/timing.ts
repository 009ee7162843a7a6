/** How long the sustained-load scenario runs: RELIABILITY_DURATION_S, else 30 minutes with RELIABILITY_SOAK=1, else 3 minutes. */
export function sustainedLoadSeconds(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.RELIABILITY_DURATION_S;
  if (raw !== undefined && raw !== '') {
    const seconds = Number(raw);
    if (!Number.isInteger(seconds) || seconds < 10) throw new Error(`RELIABILITY_DURATION_S must be an integer of at least 10, got "${raw}"`);
    return seconds;
  }
  return env.RELIABILITY_SOAK ? 1800 : 180;
}
