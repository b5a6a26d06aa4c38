// Pipecat for `npm run bench`: a local venv (bench/.venv, gitignored) with the pinned
// `pipecat-ai` from PyPI, and bench/pipecat/bot.py (Pipecat's Twilio example pipeline) started
// against the same fake providers as our worker. Skipped with a reason, never failing the bench,
// when asked (--no-pipecat) or when PyPI cannot be reached and the venv is not there yet.

import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { ROOT, freePort, sleep } from '../tests/harness.mjs';

const execFileAsync = promisify(execFile);

/** The Pipecat release the bench compares against, and the extras its Twilio example needs. */
export const PIPECAT_VERSION = '1.14.0';
const REQUIREMENTS = [`pipecat-ai[websocket,deepgram,openai,elevenlabs]==${PIPECAT_VERSION}`, 'uvicorn'];
const VENV = path.join(ROOT, 'bench', '.venv');
const PYTHON = path.join(VENV, 'bin', 'python');
const BOT = path.join(ROOT, 'bench', 'pipecat', 'bot.py');

async function installedVersion() {
  if (!existsSync(PYTHON)) return null;
  try {
    const { stdout } = await execFileAsync(PYTHON, ['-c', 'import importlib.metadata as m; print(m.version("pipecat-ai"))']);
    return stdout.trim();
  } catch {
    return null;
  }
}

async function pypiReachable() {
  try {
    const res = await fetch('https://pypi.org/simple/pipecat-ai/', { signal: AbortSignal.timeout(10_000) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

/**
 * Makes sure bench/.venv has pipecat-ai PIPECAT_VERSION (installs it when missing). Resolves to
 * {version} or {skipped: reason}.
 */
export async function ensurePipecat({ log = () => {} } = {}) {
  if (await installedVersion() === PIPECAT_VERSION) return { version: PIPECAT_VERSION };
  if (!(await pypiReachable())) return { skipped: 'PyPI (pypi.org) is unreachable and bench/.venv has no pipecat-ai' };
  try {
    const python = process.env.PYTHON ?? 'python3';
    if (!existsSync(PYTHON)) {
      log(`pipecat: creating ${path.relative(ROOT, VENV)} with ${python}`);
      await execFileAsync(python, ['-m', 'venv', VENV]);
    }
    log(`pipecat: installing ${REQUIREMENTS.join(' ')} from PyPI (about 2 minutes)`);
    await execFileAsync(PYTHON, ['-m', 'pip', 'install', '--quiet', ...REQUIREMENTS], { maxBuffer: 64 * 1024 * 1024 });
  } catch (e) {
    return { skipped: `installing pipecat-ai failed: ${String(e.stderr || e.message).trim().split('\n').slice(-3).join(' ')}` };
  }
  const version = await installedVersion();
  return version === PIPECAT_VERSION ? { version } : { skipped: `pipecat-ai ${PIPECAT_VERSION} not importable after install (found ${version})` };
}

/**
 * Starts bench/pipecat/bot.py pointed at the fakes {dg, openai, eleven}, its STT Deepgram Nova
 * (`stt: 'nova'`, `/v1/listen`) or Flux (`'flux'`, or `'flux-eager'` with Pipecat's eager end of
 * turn, `/v2/listen`); resolves once it answers, to {url (its Twilio Media Streams endpoint),
 * output, stop()}.
 */
export async function startPipecatBot({ dg, openai, eleven }, { stt = 'nova' } = {}) {
  const port = await freePort();
  const output = [];
  const child = spawn(PYTHON, [BOT, '--port', String(port)], {
    env: {
      ...process.env,
      DEEPGRAM_API_KEY: 'dg-key', DEEPGRAM_URL: dg.url,
      OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: openai.url, OPENAI_MODEL: 'gpt-test',
      ELEVENLABS_API_KEY: 'xi-key', ELEVENLABS_URL: eleven.url,
      PIPECAT_STT: stt,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const onData = (chunk) => output.push(...chunk.toString().split('\n').filter(Boolean));
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`pipecat bot exited early:\n${output.join('\n')}`);
    try {
      const res = await fetch(`${base}/health`);
      await res.arrayBuffer();
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`pipecat bot did not start:\n${output.join('\n')}`);
    }
    await sleep(200);
  }
  return {
    url: `ws://127.0.0.1:${port}/ws`,
    output,
    pid: child.pid,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
