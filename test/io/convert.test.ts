// `dino convert` and the official-checkpoint mapping: the official training checkpoint becomes our
// layout with every optimizer tensor under the right parameter name (checked against the names PyTorch
// recorded), loads into lib/optim's AdamW, and converts back to a file PyTorch loads with
// weights_only=True and resumes from exactly as main_dino.py would; the command line's help, exit codes
// and error messages.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addon, dispose, tensor, zeros, type Tensor } from '../../lib/index.ts';
import { AdamW } from '../../lib/optim/adamw.ts';
import { getParamsGroups } from '../../lib/optim/param-groups.ts';
import { adamwFromCheckpoint, adamwToCheckpoint, loadCheckpoint, saveCheckpoint } from '../../lib/io/checkpoint.ts';
import { convert, isTrainingCheckpoint, officialToOurs } from '../../lib/io/convert.ts';
import { readPth, writePth, type PthValue } from '../../lib/io/pth.ts';
import { readSafetensors } from '../../lib/io/safetensors.ts';
import { main } from '../../scripts/dino.ts';
import { runCli } from '../helpers/cli.ts';
import { loadFixtures } from '../helpers/fixtures.ts';
import { pythonMissing, runPython } from './python.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const fixtures = join(root, 'test', 'fixtures', 'pth');
const expected = loadFixtures('pth').checkpoint;
const dir = mkdtempSync(join(tmpdir(), 'convert-test-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const bits = (x: Tensor): number[] => [...new Uint32Array(x.data().buffer)];
// A fixture's float32 values (recorded exactly) as bit patterns.
const fixtureBits = (x: { data: number[] }): number[] => [...new Uint32Array(Float32Array.from(x.data).buffer)];
const stripModule = (k: string) => k.replace(/^module\./, '');

t.test('an official training checkpoint in our layout', async (t) => {
  const before = addon.memoryStats('cpu').inUse;
  const tree = readPth(join(fixtures, 'checkpoint.pth'));
  t.ok(isTrainingCheckpoint(tree));
  const ours = officialToOurs(tree as Map<string, PthValue>);
  const names = ours.tensors.map(([n]) => n);
  const studentKeys = (expected.attrs.student_keys as string[]).map((k) => `student.${stripModule(k)}`);
  const teacherKeys = (expected.attrs.teacher_keys as string[]).map((k) => `teacher.${k}`);
  t.same(names.slice(0, studentKeys.length + teacherKeys.length), [...studentKeys, ...teacherKeys], "student.* without 'module.', then teacher.*");
  t.equal(names[names.length - 1], 'loss.center');
  const byName = new Map(ours.tensors);
  for (const [path, want] of Object.entries(expected.tensors)) {
    const [part, ...rest] = path.split('/');
    if (part !== 'student' && part !== 'teacher') continue;
    t.same(bits(byName.get(`${part}.${stripModule(rest.join('/'))}`)!), fixtureBits(want), `${path}`);
  }
  t.same(bits(byName.get('loss.center')!), fixtureBits(expected.tensors['dino_loss/center']), 'loss.center');

  // The optimizer: PyTorch numbered the parameters; the fixture recorded which name each number is.
  const paramNames = (expected.attrs.param_names as string[]).map(stripModule);
  const optimizer = ours.meta.optimizer as any;
  t.same(optimizer.param_groups.map((g: any) => g.params), [paramNames.slice(0, 11), paramNames.slice(11)], 'parameter groups named as PyTorch numbered them');
  t.same(optimizer.param_groups.map((g: any) => g.weight_decay), [0.05, 0], 'hyper-parameters kept');
  for (const [i, name] of paramNames.entries()) {
    for (const key of ['exp_avg', 'exp_avg_sq']) {
      t.same(bits(byName.get(`optimizer.${name}.${key}`)!), fixtureBits(expected.tensors[`optimizer/state/${i}/${key}`]), `optimizer.${name}.${key} is PyTorch's state[${i}]`);
    }
    t.equal(optimizer.state[name].step, expected.tensors[`optimizer/state/${i}/step`].data[0], `${name}: step`);
  }
  t.equal(optimizer.state['head.last_layer.weight_v'].step, 1, 'the layer frozen in the first step has one step fewer');
  t.notOk(names.some((n) => n.includes('weight_g') && n.startsWith('optimizer.')), 'the frozen weight_g has no optimizer state');
  t.same([ours.meta.epoch, ours.meta.args, ours.meta.fp16_scaler], [expected.attrs.epoch, expected.attrs.args, expected.attrs.fp16_scaler], 'epoch, args, fp16_scaler as metadata');

  // lib/optim's AdamW takes that state (names and shapes checked by its loadStateDict).
  const student = ours.tensors.filter(([n]) => n.startsWith('student.') && !n.endsWith('weight_g')).map(([n, x]): [string, Tensor] => [n.slice('student.'.length), zeros(x.shape)]);
  const adamw = new AdamW(getParamsGroups(student));
  adamw.loadStateDict(adamwFromCheckpoint(byName, ours.meta.optimizer));
  const sd = adamw.stateDict();
  t.equal(sd.state.length, 25, 'every trained parameter has state');
  t.same(bits(sd.state[0][1].expAvg), bits(byName.get(`optimizer.${sd.state[0][0]}.exp_avg`)!), 'with the values');
  t.same(sd.paramGroups.map((g) => g.weightDecay), [0.05, 0]);
  const back = adamwToCheckpoint(sd);
  t.same(back.meta, { param_groups: optimizer.param_groups.map((g: any) => ({ lr: g.lr, betas: g.betas, eps: g.eps, weight_decay: g.weight_decay, params: g.params })), state: optimizer.state }, 'and gives it back in the same form');
  adamw.dispose();
  dispose(student.map(([, x]) => x));
  dispose(tree);
  t.equal(addon.memoryStats('cpu').inUse, before, 'nothing leaked');
});

t.test('adamwFromCheckpoint refuses state it cannot use', async (t) => {
  const none = new Map<string, Tensor>();
  t.throws(() => adamwFromCheckpoint(none, undefined), /meta\.optimizer should be/);
  t.throws(() => adamwFromCheckpoint(none, { param_groups: [{ lr: 1, betas: [0.9], eps: 1, weight_decay: 0, params: [] }] }), /betas should be two numbers/);
  t.throws(() => adamwFromCheckpoint(none, { param_groups: [{ lr: 1, betas: [0.9, 0.9], eps: 1, weight_decay: 0, params: [], amsgrad: true }] }), /amsgrad or maximize/);
  t.throws(() => adamwFromCheckpoint(none, { param_groups: [], state: { w: { step: 3 } } }), /'w' has a step count but no optimizer\.w\.exp_avg/);
});

const compareInPython = `
import sys, json, torch
sys.path.insert(0, sys.argv[3])
from fixtures.pth import DataParallelKeys, MultiCropWrapper, VisionTransformer, DINOHead, get_params_groups
orig = torch.load(sys.argv[1], weights_only=False)
back = torch.load(sys.argv[2], weights_only=True)
same_sd = lambda a, b: list(a) == list(b) and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)
plain = lambda d: {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
o, b = orig['optimizer'], back['optimizer']
out = {'keys': list(back), 'student': same_sd(orig['student'], back['student']), 'teacher': same_sd(orig['teacher'], back['teacher']),
       'dino_loss': same_sd(orig['dino_loss'], back['dino_loss']),
       'state_ids': list(b['state']) == list(o['state']),
       'state': all(same_sd(o['state'][i], b['state'][i]) for i in o['state']),
       'param_groups': [plain(g) for g in o['param_groups']] == [plain(g) for g in b['param_groups']],
       'epoch': back['epoch'] == orig['epoch'], 'args': plain(vars(orig['args'])) == back['args'], 'fp16_scaler': back['fp16_scaler'] == orig['fp16_scaler']}
# resume as main_dino.py's restart_from_checkpoint would
student = DataParallelKeys(MultiCropWrapper(VisionTransformer(), DINOHead()))
student.load_state_dict(back['student'])
MultiCropWrapper(VisionTransformer(), DINOHead()).load_state_dict(back['teacher'])
optimizer = torch.optim.AdamW(get_params_groups(student))
optimizer.load_state_dict(back['optimizer'])
for p in student.parameters():
    p.grad = torch.ones_like(p) if p.requires_grad else None
optimizer.step()
out['resumed'] = True
print(json.dumps(out))
`;

t.test('dino convert: .pth -> .safetensors -> .pth, and PyTorch resumes from the result', async (t) => {
  const ours = join(dir, 'checkpoint.safetensors');
  const back = join(dir, 'checkpoint.pth');
  t.equal(await main(['convert', join(fixtures, 'checkpoint.pth'), ours]), 0);
  const ckpt = loadCheckpoint(ours);
  t.equal(ckpt.meta.epoch, 3, 'our checkpoint, loadable with loadCheckpoint');
  dispose([...ckpt.tensors.values()]);
  t.equal(await main(['convert', ours, back]), 0);
  await t.test('PyTorch loads it (weights_only=True), equal to the original, and resumes', { skip: pythonMissing('torch') }, async (t) => {
    const r = runPython(compareInPython, [join(fixtures, 'checkpoint.pth'), back, join(root, 'scripts')]);
    t.same(r, {
      keys: ['student', 'teacher', 'optimizer', 'dino_loss', 'epoch', 'args', 'fp16_scaler'],
      student: true, teacher: true, dino_loss: true, state_ids: true, state: true, param_groups: true, epoch: true, args: true, fp16_scaler: true, resumed: true,
    });
  });
});

t.test('backbone-only weights: .pth -> plain .safetensors -> .pth', async (t) => {
  const st = join(dir, 'backbone.safetensors');
  const back = join(dir, 'backbone.pth');
  t.match(convert(join(fixtures, 'backbone.pth'), st), /state dict of 18 tensors/);
  const { tensors, metadata } = readSafetensors(st);
  t.same(metadata, {}, 'a plain safetensors file, no checkpoint metadata');
  t.same(tensors.map(([k]) => k), loadFixtures('pth').backbone.attrs.keys, 'the same keys');
  dispose(tensors.map(([, x]) => x));
  t.match(convert(st, back), /state dict of 18 tensors/);
  await t.test('PyTorch loads it and it equals the original', { skip: pythonMissing('torch') }, async (t) => {
    const r = runPython(`
import sys, json, torch
a, b = torch.load(sys.argv[1], weights_only=True), torch.load(sys.argv[2], weights_only=True)
print(json.dumps([type(b).__name__, list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)]))`, [join(fixtures, 'backbone.pth'), back]);
    t.same(r, ['OrderedDict', true]);
  });
});

t.test('a checkpoint we wrote, in the official layout', async (t) => {
  const w = tensor([1, 2, 3, 4], [2, 2]);
  const b = tensor([5, 6], [2]);
  const m = tensor([0.5, 0.5], [2]);
  const center = tensor([0, 1], [1, 2]);
  const adam = adamwToCheckpoint({
    state: [['backbone.w', { step: 4, expAvg: w, expAvgSq: w }]],
    paramGroups: [{ lr: 0.1, weightDecay: 0.04, betas: [0.9, 0.999], eps: 1e-8, params: ['backbone.w'] }, { lr: 0.1, weightDecay: 0, betas: [0.9, 0.999], eps: 1e-8, params: ['backbone.b'] }],
  });
  const p = join(dir, 'ours.safetensors');
  saveCheckpoint(p, {
    tensors: [['student.backbone.w', w], ['student.backbone.b', b], ['teacher.backbone.w', w], ['teacher.head.bn.running_mean', m], ['loss.center', center], ...adam.tensors],
    meta: { epoch: 2, iteration: 10, args: { lr: 0.1 }, optimizer: adam.meta },
  });
  const out = join(dir, 'ours.pth');
  convert(p, out);
  const tree = readPth(out) as Map<string, PthValue>;
  t.same([...tree.keys()], ['student', 'teacher', 'optimizer', 'dino_loss', 'epoch', 'iteration', 'args']);
  t.same([...(tree.get('student') as Map<string, Tensor>).keys()], ['module.backbone.w', 'module.backbone.b'], "student keys with 'module.'");
  t.same([...(tree.get('teacher') as Map<string, Tensor>).keys()], ['module.backbone.w', 'module.head.bn.running_mean'], "a teacher with batch norms is wrapped too, as the official code does");
  const opt = tree.get('optimizer') as Map<string, any>;
  t.same(opt.get('param_groups').map((g: Map<string, unknown>) => Object.fromEntries(g)), [
    { lr: 0.1, betas: [0.9, 0.999], eps: 1e-8, weight_decay: 0.04, params: [0] },
    { lr: 0.1, betas: [0.9, 0.999], eps: 1e-8, weight_decay: 0, params: [1] },
  ]);
  const s0 = opt.get('state').get(0) as Map<string, Tensor>;
  t.same([...s0.keys()], ['step', 'exp_avg', 'exp_avg_sq'], "torch's key order");
  t.same([s0.get('step')!.shape, s0.get('step')!.item()], [[], 4], 'step as a 0-d tensor, as PyTorch >= 1.12 keeps it');
  dispose(tree);
  const bad = join(dir, 'bad.safetensors');
  saveCheckpoint(bad, { tensors: [['ema.w', w]], meta: {} });
  t.throws(() => convert(bad, join(dir, 'bad.pth')), /tensor 'ema\.w' is outside student\.\*, teacher\.\*, loss\.\* and optimizer\.\*/);
  dispose([w, b, m, center]);
});

const run = runCli;

t.test('the command line: help, exit codes, messages without stack traces', async (t) => {
  t.match(await run(['--help']), { code: 0, out: /usage: dino <command>[\s\S]*convert\s+convert between/ });
  t.match(await run([]), { code: 2, out: /usage: dino <command>/ }, 'no command: the overview, exit 2');
  t.match(await run(['convert', '--help']), { code: 0, out: /usage: dino convert INPUT OUTPUT/ });
  t.match(await run(['frobnicate']), { code: 2, err: /dino: unknown command 'frobnicate'/ });
  t.match(await run(['convert', 'a.pth']), { code: 2, err: /dino convert: convert takes exactly two file names[\s\S]*dino convert --help/ });
  t.match(await run(['convert', join(dir, 'missing.pth'), join(dir, 'x.safetensors')]), { code: 1, err: /dino convert: ENOENT: no such file or directory/ });
  t.match(await run(['convert', join(fixtures, 'dtypes.pth'), join(dir, 'x.pth')]), { code: 1, err: /both files are pth/ });
  t.match(await run(['convert', join(fixtures, 'dtypes.pth'), join(dir, 'x.bin')]), { code: 1, err: /unknown extension '\.bin'/ });
  const hostile = join(dir, 'hostile.pth');
  writePth(hostile, new Map([['x', 1]]));
  const r = await run(['convert', join(fixtures, 'dtypes.pth'), join(dir, 'dtypes.safetensors')]);
  t.match(r, { code: 0, out: /state dict of 22 tensors/ });
  t.match(await run(['convert', hostile, join(dir, 'h.safetensors')]), { code: 1, err: /neither a DINO training checkpoint nor a state dict\) is not a state dict: its entry "x" is a number/ });
  for (const args of [['convert', 'a.pth'], ['convert', hostile, join(dir, 'h.safetensors')]]) t.notMatch((await run(args)).err, /\n\s+at /, 'no stack trace');

  // The real program: exit code and stderr.
  const proc = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/dino.ts', 'convert', join(dir, 'missing.pth'), join(dir, 'y.safetensors')], { cwd: root, encoding: 'utf8' });
  t.equal(proc.status, 1, 'node --import tsx scripts/dino.ts exits with 1 on an error');
  t.match(proc.stderr, /^dino convert: ENOENT/);
  t.notMatch(proc.stderr, /\n\s+at /, 'without a stack trace');
});
