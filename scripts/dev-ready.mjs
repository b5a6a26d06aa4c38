// Started by scripts/dev.sh beside `wrangler dev` (process `pid`): once the worker answers on
// `port`, prints where the dashboard is, the key to log in with and what to do next, so the
// last thing `npm run dev` shows is not wrangler's log but the way in. Gives up quietly when
// wrangler exits first.
//
//   node scripts/dev-ready.mjs <port> <pid> [.dev.vars path]

import { answers, devOrigin, readDevVars, DEV_VARS } from './local-dev.mjs';

const [port, pid, devVars = DEV_VARS] = process.argv.slice(2);
const origin = devOrigin(port);
const alive = () => {
  try {
    process.kill(Number(pid), 0);
    return true;
  } catch {
    return false;
  }
};

for (;;) {
  if (!alive()) process.exit(0);
  if (await answers(origin)) break;
  await new Promise((r) => setTimeout(r, 500));
}
const key = readDevVars(devVars).ADMIN_API_KEY;
const lines = [
  `phone-agent is running: dashboard ${origin}/`,
  `Log in with this API key (ADMIN_API_KEY in ${devVars}, local development only):`,
  `  ${key}`,
  'Next: in another terminal, `npm run demo` places a simulated call (no accounts needed)',
  'that you can watch live in the dashboard. Ctrl-C stops the worker.',
];
const rule = '─'.repeat(Math.max(...lines.map((l) => l.length)));
console.log(['', rule, ...lines, rule, ''].join('\n'));
