// The teacher's update: an exponential moving average of the student's weights.
import { shapeText } from '../engine/tensor.ts';
import { noGrad } from '../autograd/tape.ts';
import type { Module } from '../nn/module.ts';
import { emaUpdate } from '../ops/index.ts';

// teacher = momentum * teacher + (1 - momentum) * student, in place, over the two modules' parameters in
// order (frozen ones such as weight_g included, buffers not), as the official zip of .parameters().
// The names and shapes must correspond; they are all checked before anything is updated.
export function updateTeacher(student: Module, teacher: Module, momentum: number): void {
  if (!(momentum >= 0 && momentum <= 1)) throw new RangeError(`updateTeacher: momentum must be in [0, 1], got ${momentum}`);
  const s = student.namedParameters();
  const t = teacher.namedParameters();
  if (s.length !== t.length) throw new Error(`updateTeacher: the student has ${s.length} parameters, the teacher ${t.length}`);
  s.forEach(([name, p], i) => {
    const [tName, q] = t[i];
    if (name !== tName) throw new Error(`updateTeacher: parameter ${i} is '${name}' in the student but '${tName}' in the teacher`);
    if (shapeText(p.shape) !== shapeText(q.shape)) {
      throw new Error(`updateTeacher: '${name}' has shape ${shapeText(p.shape)} in the student, ${shapeText(q.shape)} in the teacher`);
    }
  });
  noGrad(() => s.forEach(([, p], i) => emaUpdate(t[i][1], p, momentum)));
}
