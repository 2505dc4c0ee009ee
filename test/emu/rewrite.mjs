// The emulated build's source step (see cuda_runtime.h): copies native/cuda's .cu and .cuh files into
// the build directory as host C++, with kernel launches and __shared__ arrays rewritten.
//   node rewrite.mjs OUT_DIR FILE...   (FILE.cu -> OUT_DIR/FILE.cpp, FILE.cuh -> OUT_DIR/FILE.cuh)
// Line numbers are kept (replacements never add or remove a newline) and a #line directive names the
// original file, so compiler messages point into native/cuda.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';

const [outDir, ...files] = process.argv.slice(2);
if (!outDir || files.length === 0) {
  console.error('usage: node rewrite.mjs OUT_DIR FILE...');
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });

// name<<<config>>>(   or   name<targs><<<config>>>(   where targs may nest one level of <>.
const launch = /([A-Za-z_][\w:]*(?:<(?:[^<>;]|<[^<>;]*>)*>)?)\s*<<<([\s\S]*?)>>>\s*\(\s*(\)?)/g;
// __shared__ T name[...][...];
const shared = /__shared__\s+([\w:<>, ]+?)\s+(\w+)((?:\s*\[[^\]]+\])+)\s*;/g;

for (const file of files) {
  let text = readFileSync(file, 'utf8');
  let launches = 0;
  text = text.replace(launch, (_m, kernel, config, close, offset) => {
    launches++;
    let name = JSON.stringify(kernel.replace(/::dino::cuda::/g, '').replace(/^::/, ''));
    // In a macro whose parameter is the kernel (DINO_LAUNCH_ROWS), the name is the argument's.
    const define = /#define\s+\w+\(([^)]*)\)[^\n]*(?:\\\n[^\n]*)*$/.exec(text.slice(0, offset));
    const base = kernel.match(/^[\w:]+/)[0];
    if (define && define[1].split(',').map((s) => s.trim()).includes(base)) {
      name = `#${base} ${JSON.stringify(kernel.slice(base.length).replace(/::dino::cuda::/g, ''))}`;
    }
    return `::emu::launch(${name}, ${kernel}, ::emu::Config(${config})${close ? ')' : ', '}`;
  });
  text = text.replace(shared, (_m, type, name, dims) => `static ${type} ${name}${dims}; ::emu::shared_array(${name}, sizeof ${name});`);
  if (text.includes('<<<')) {
    console.error(`${file}: a kernel launch the rewrite does not understand`);
    process.exit(1);
  }
  const out = join(outDir, file.endsWith('.cu') ? `${basename(file, '.cu')}.cpp` : basename(file));
  const line = `#line 1 "${relative(process.cwd(), file).split('\\').join('/')}"\n`;
  writeFileSync(out, line + text);
  if (process.env.DINO_EMU_VERBOSE) console.log(`${out}: ${launches} launches`);
}
