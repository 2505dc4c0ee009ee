// Reads the PyTorch reference fixtures written by scripts/make-fixtures.py. DINO_FIXTURES_DIR points
// the tests at a freshly generated set (CI does this); the committed set is the default.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tensor, type Tensor } from '../../lib/index.ts';

export interface FixtureTensor {
  shape: number[];
  data: number[];
}

export interface FixtureCase {
  attrs: Record<string, any>;
  tensors: Record<string, FixtureTensor>;
}

export const fixturesDir = process.env.DINO_FIXTURES_DIR ?? join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'ops');

export function loadFixtures(family: string): Record<string, FixtureCase> {
  const file = JSON.parse(readFileSync(join(fixturesDir, `${family}.json`), 'utf8'));
  return file.cases;
}

// A case tensor as an engine tensor (the caller's scope owns it).
export function fromFixture(c: FixtureCase, name: string): Tensor {
  const t = c.tensors[name];
  if (t === undefined) throw new Error(`fixture has no tensor '${name}'`);
  return tensor(t.data, t.shape);
}
