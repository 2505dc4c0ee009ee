#!/usr/bin/env node
// `npx dino ...`: the CLI from the JavaScript that `npm install` compiles into dist/.
import process from 'node:process';
import { main } from '../dist/scripts/dino.js';

process.exitCode = await main(process.argv.slice(2));
