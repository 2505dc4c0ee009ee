// Runs a computation on one thread and then on several, restoring the thread count afterwards: the
// engine's results must not depend on how the work was split.
import { addon } from '../../lib/index.ts';

export function onOneAndSeveralThreads<T>(run: () => T): [one: T, several: T] {
  const threads = addon.buildInfo().threads;
  try {
    addon.setNumThreads(1);
    const one = run();
    addon.setNumThreads(Math.max(2, threads));
    return [one, run()];
  } finally {
    addon.setNumThreads(threads);
  }
}
