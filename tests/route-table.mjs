// The worker's route table, read from its one source (the block between the route-table markers
// in src/routes.rs), for the tests that check the API against it. A line the parser cannot read
// fails the read, so the table cannot grow a route these tests do not see.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ROOT } from './harness.mjs';

const BEGIN = '// route-table:begin';
const END = '// route-table:end';
const LINE = /route\(\s*"([A-Z]+) (\/[^"\s]*)",\s*(Public|Read|Operate|Administer|Bootstrap)\((\w+)::(\w+)\),?\s*\),?/g;

/** Every route: {method, path (template), gate, handler, label}. */
export async function routeTable() {
  const source = await readFile(path.join(ROOT, 'src', 'routes.rs'), 'utf8');
  const begin = source.indexOf(BEGIN);
  const end = source.indexOf(END);
  if (begin < 0 || end < begin) throw new Error(`src/routes.rs: no ${BEGIN} … ${END} block`);
  const block = source.slice(begin + BEGIN.length, end);
  const routes = [...block.matchAll(LINE)].map((m) => ({
    method: m[1],
    path: m[2],
    gate: m[3],
    handler: `${m[4]}::${m[5]}`,
    label: `${m[1]} ${m[2]}`,
  }));
  const unread = block.replace(LINE, '').replace(/\/\/[^\n]*/g, '').trim();
  if (unread) throw new Error(`src/routes.rs: route table lines the tests cannot read: ${unread.slice(0, 200)}`);
  if (routes.length === 0) throw new Error('src/routes.rs: empty route table');
  return routes;
}

/** A concrete path for a template: each `{param}` becomes a value no resource has. */
export const concrete = (template) => template.replace(/\{(\w+)\}/g, (_, name) => `${name}_none`);

/** Whether `pathname` fits `template` (a `{param}` fits any one segment). */
export function fits(template, pathname) {
  const t = template.split('/');
  const p = pathname.split('/');
  return t.length === p.length && t.every((s, i) => /^\{\w+\}$/.test(s) || s === p[i]);
}

/** The methods the table serves on `pathname`, in table order: the expected `Allow`. */
export function methodsOn(routes, pathname) {
  return [...new Set(routes.filter((r) => fits(r.path, pathname)).map((r) => r.method))];
}
