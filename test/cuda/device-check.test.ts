// The device check must stay ready to run on a GPU machine that has no node_modules: nothing it loads
// may import a package (sharp, tap), and where no GPU answers it says so and exits with 2.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addon } from '../../lib/index.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

// Every module reachable from `entry` through static and dynamic imports of relative paths, and the
// bare (package) specifiers any of them names. Type-only imports are erased by the compiler: skipped.
function reachable(entry: string): { files: Set<string>; packages: Map<string, string> } {
  const files = new Set<string>();
  const packages = new Map<string, string>();
  const pending = [entry];
  const spec = /(?:^|\n)\s*import\s+(?!type\b)(?:[^'"]*?\sfrom\s+)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|(?:^|\n)\s*export\s+(?!type\b)[^'"]*?\sfrom\s+['"]([^'"]+)['"]/g;
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    for (const m of readFileSync(file, 'utf8').matchAll(spec)) {
      const s = m[1] ?? m[2] ?? m[3];
      if (s.startsWith('.')) pending.push(resolve(dirname(file), s));
      else if (!s.startsWith('node:')) packages.set(s, file.slice(root.length + 1));
    }
  }
  return { files, packages };
}

t.test('the device check imports no package, directly or through the project', async (t) => {
  const { files, packages } = reachable(join(root, 'scripts/device-check.ts'));
  t.ok(files.has(join(root, 'test/cuda/cases/index.ts')) && files.has(join(root, 'bench/gpu-step.ts')), `${files.size} modules reached, the cases and the benchmark among them`);
  t.same([...packages].map(([p, f]) => `${p} (from ${f})`), [], 'packages imported');
});

t.test('the import walk finds a package import', async (t) => {
  t.ok(reachable(join(root, 'lib/index.ts')).packages.has('sharp'), 'lib/index.ts reaches sharp');
});

t.test('without a GPU the check says so and exits with 2', { skip: addon.buildInfo().cuda.usable ? 'a GPU is usable here' : false }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dino-device-check-'));
  try {
    const out = join(dir, 'summary.json');
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'scripts/device-check.ts'), '--stage', 'info', '--out', out], { cwd: root, encoding: 'utf8', timeout: 120_000 });
    t.equal(r.status, 2, `exit status (stderr: ${r.stderr.slice(-300)})`);
    const summary = JSON.parse(readFileSync(out, 'utf8')) as { stages: { info: { status: string; reason?: string } } };
    t.equal(summary.stages.info.status, 'skipped');
    t.match(summary.stages.info.reason ?? '', /CUDA|cuda/, `the reason: ${summary.stages.info.reason}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
