/** RSS sampling for the hostile-input scenarios, whose rows go to the report through recordResult. */
import { RssSampler } from '../process-stats';
import type { ServiceProcess } from '../service-process';

/** Samples the services' RSS while a scenario runs; `stop()` gives each one's peak, in bytes. */
export function sampleRss(services: ServiceProcess[]): { stop(): Record<string, number> } {
  const sampler = new RssSampler(() => services.map((s) => ({ name: s.name, pid: s.pid })), 250).start();
  return {
    stop() {
      sampler.stop();
      return sampler.peak();
    },
  };
}
