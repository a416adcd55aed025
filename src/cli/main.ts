#!/usr/bin/env node
// The `peft-ts` executable (package.json "bin"): runs one command and exits with its code.
import { processIo, run } from './index.js';

const code = await run(process.argv.slice(2), processIo);
process.exitCode = code;
