// Runs Python (PyTorch, the reference safetensors package) as the outside oracle for the file-format
// tests, when it is installed; tests that need it are skipped with the reason otherwise.
import { spawnSync } from 'node:child_process';

const missing = new Map<string, string | false>();

// Why Python with these modules cannot be used here, or false when it can.
export function pythonMissing(...modules: string[]): string | false {
  const key = modules.join(',');
  if (!missing.has(key)) {
    const r = spawnSync('python3', ['-c', `import ${['json', ...modules].join(', ')}`], { encoding: 'utf8' });
    missing.set(key, r.error ? `python3 is not available (${r.error.message})` : r.status !== 0 ? `python3 cannot import ${modules.join(', ')}` : false);
  }
  return missing.get(key)!;
}

// Runs a Python program with arguments (sys.argv[1:]) and returns what it printed as JSON.
export function runPython(code: string, args: string[] = []): any {
  const r = spawnSync('python3', ['-c', code, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`python3 failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout);
}
