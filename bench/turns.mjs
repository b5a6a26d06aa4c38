// The turn path alone: `node bench/turns.mjs [turns] [--direct]` runs bench/live.mjs's one-call
// conversation (turn overhead, LLM→TTS, barge-in → clear, flatness) and prints it as JSON.
import { turnBench } from './live.mjs';

const args = process.argv.slice(2);
const turns = Number(args.find((a) => /^\d+$/.test(a)) ?? 200);
const results = await turnBench({ turns, direct: args.includes('--direct') });
console.log(JSON.stringify(results, null, 1));
