// Memory scopes. Native memory (and later GPU memory) must never wait for the garbage collector: every
// tensor made inside tidy(fn) is disposed when fn returns, except what fn returns (handed to the
// enclosing scope) and what was kept. tidy is synchronous on purpose: a scope spanning an await would
// capture tensors made by unrelated code running meanwhile.

export interface Scoped {
  dispose(): void;
  readonly kept: boolean;
}

const stack: Set<Scoped>[] = [];

export function track(t: Scoped): void {
  if (stack.length > 0) stack[stack.length - 1].add(t);
}

// Walks what a scope returns: tensors, arrays of them and plain objects holding them.
function collect(value: unknown, into: Set<Scoped>, isScoped: (v: unknown) => v is Scoped): void {
  if (isScoped(value)) into.add(value);
  else if (Array.isArray(value)) for (const v of value) collect(v, into, isScoped);
  else if (value instanceof Map) for (const v of value.values()) collect(v, into, isScoped);
  else if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, into, isScoped);
  }
}

let isScopedValue: (v: unknown) => v is Scoped = (_v: unknown): _v is Scoped => false;
// Tensors a recording gradient tape still needs: a scope inside the recorded function hands them to its
// parent instead of disposing them (set by the tape module).
let isRetained: (t: Scoped) => boolean = () => false;
export function setRetainPredicate(p: (t: Scoped) => boolean): void {
  isRetained = p;
}
// Set once by the tensor module, so that this module needs no import of it.
export function setScopedPredicate(p: (v: unknown) => v is Scoped): void {
  isScopedValue = p;
}

export function tidy<T>(fn: () => T): T {
  const scope = new Set<Scoped>();
  stack.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    stack.pop();
    for (const t of scope) if (!t.kept) t.dispose();
    throw e;
  }
  stack.pop();
  if (result instanceof Promise) {
    for (const t of scope) if (!t.kept) t.dispose();
    throw new Error('tidy() takes a synchronous function: run the awaited work in its own tidy()');
  }
  const survivors = new Set<Scoped>();
  collect(result, survivors, isScopedValue);
  for (const t of scope) {
    if (survivors.has(t) || isRetained(t)) track(t);
    else if (!t.kept) t.dispose();
  }
  return result;
}

// Disposes every tensor in a value (a tensor, an array or an object of them).
export function dispose(value: unknown): void {
  const found = new Set<Scoped>();
  collect(value, found, isScopedValue);
  for (const t of found) t.dispose();
}

// How many scopes are open (for tests of the scope machinery).
export function scopeDepth(): number {
  return stack.length;
}
