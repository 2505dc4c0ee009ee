// `dino convert INPUT OUTPUT`: official .pth files to safetensors and back (lib/io/convert.ts).
import { convert } from '../io/convert.ts';
import { UsageError, type Command } from './command.ts';

export const convertCommand: Command = {
  summary: 'convert between official .pth files and safetensors',
  usage: `usage: dino convert INPUT OUTPUT

Converts by file extension (.pth or .pt, and .safetensors):
  .pth -> .safetensors  an official DINO training checkpoint (student, teacher, optimizer, epoch,
                        args, dino_loss, fp16_scaler) becomes a dino-ts checkpoint; a state dict
                        (such as the released backbone-only weights) a plain safetensors file
  .safetensors -> .pth  a dino-ts checkpoint becomes the official training-checkpoint layout (student
                        keys with 'module.'); a plain safetensors file a state dict

Tensors read from .pth files become float32 (float16 and bfloat16 convert exactly); tensors read from
safetensors keep their dtype. The output file is replaced atomically. See docs/CHECKPOINTS.md.`,
  run(args) {
    if (args.length !== 2 || args.some((a) => a.startsWith('-'))) throw new UsageError('convert takes exactly two file names: INPUT OUTPUT');
    console.log(convert(args[0], args[1]));
  },
};
