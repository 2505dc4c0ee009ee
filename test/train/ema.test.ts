import t from 'tap';
import { Module, tensor } from '../../lib/index.ts';
import { updateTeacher } from '../../lib/optim/ema.ts';
import { loadFixtures } from '../helpers/fixtures.ts';
import { assertClose } from '../helpers/close.ts';
import { Net } from './net.ts';

const c = loadFixtures('train').ema;
const snapshot = (m: Module): number[][] => m.stateDict().map(([, p]) => [...p.data()]);

t.test('updateTeacher is the official EMA over zip(parameters())', async (t) => {
  const student = new Net(c, 'student_');
  const teacher = new Net(c, 'teacher_');
  const studentBefore = snapshot(student);
  const running = [...teacher.namedBuffers()[0][1].data()];
  updateTeacher(student, teacher, c.attrs.momentum);
  // The same float32 operations as PyTorch's mul_(m).add_((1 - m) * s): bit-identical.
  for (const [n, p] of teacher.namedParameters()) assertClose(t, p, Float32Array.from(c.tensors[`out_${n}`].data), { atol: 0, rtol: 0 }, `teacher ${n}`);
  t.not(teacher.param('last_layer.weight_g').data()[0], 1, 'the frozen weight_g is averaged too');
  t.same([...teacher.namedBuffers()[0][1].data()], running, 'buffers are not averaged');
  t.same(snapshot(student), studentBefore, 'the student is not touched');
  student.dispose();
  teacher.dispose();
});

// Parameters of the given names and shapes, all filled with one value.
class Other extends Module {
  constructor(names: [string, number[]][], value = 0) {
    super();
    for (const [n, shape] of names) this.registerParameter(n, tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(value), shape));
  }
}

t.test('mismatched modules are refused before anything is updated', async (t) => {
  const student = new Other([['a', [2]], ['b', [3]]], 1);
  const cases: [Module, RegExp][] = [
    [new Other([['a', [2]]]), /updateTeacher: the student has 2 parameters, the teacher 1/],
    [new Other([['a', [2]], ['c', [3]]]), /updateTeacher: parameter 1 is 'b' in the student but 'c' in the teacher/],
    [new Other([['a', [2]], ['b', [1, 3]]]), /updateTeacher: 'b' has shape \[3\] in the student, \[1, 3\] in the teacher/],
  ];
  for (const [teacher, message] of cases) {
    t.throws(() => updateTeacher(student, teacher, 0.5), message);
    t.same([...teacher.namedParameters()[0][1].data()], [0, 0], "nothing was updated, not even the parameters before the mismatch");
    teacher.dispose();
  }
  const teacher = new Other([['a', [2]], ['b', [3]]]);
  t.throws(() => updateTeacher(student, teacher, 1.5), /updateTeacher: momentum must be in \[0, 1\], got 1.5/);
  t.throws(() => updateTeacher(student, teacher, NaN), /momentum must be in \[0, 1\], got NaN/);
  updateTeacher(student, teacher, 0.75);
  t.same([...teacher.namedParameters()[1][1].data()], [0.25, 0.25, 0.25], 'with matching modules: 0.75 * 0 + 0.25 * 1');
  student.dispose();
  teacher.dispose();
});
