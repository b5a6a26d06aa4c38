// The carrier's side of a media stream, for tests and benchmarks: real-time "playback" of the
// audio the worker sends (marks echoed once the audio before them has played, `clear` drops the
// queue and echoes pending marks, docs/protocols.md §5.2), and real-time caller audio.

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Plays the carrier's part for audio we receive: queues media for real-time "playback", echoes
 * each mark once the audio before it has played, and on `clear` drops the queue and echoes the
 * pending marks at once (docs/protocols.md §5.2). Records every frame with its arrival time.
 */
export class Playback {
  constructor(client) {
    this.client = client;
    this.log = [];
    this.playEnd = 0;
    this.pending = new Map();
    client.socket.on('message', (data, isBinary) => {
      if (isBinary) return;
      let msg;
      try {
        msg = JSON.parse(data.toString());
      } catch {
        return;
      }
      const at = performance.now();
      if (msg.event === 'media') {
        const bytes = Buffer.from(msg.media.payload, 'base64');
        this.log.push({ at, kind: 'media', bytes: bytes.length, frame: msg });
        this.playEnd = Math.max(this.playEnd, at) + bytes.length / client.bytesPerMs;
      } else if (msg.event === 'mark') {
        const name = msg.mark.name;
        this.log.push({ at, kind: 'mark', name, frame: msg });
        const timer = setTimeout(() => {
          this.pending.delete(name);
          this.echo(name);
        }, Math.max(0, this.playEnd - at));
        this.pending.set(name, timer);
      } else if (msg.event === 'clear') {
        this.log.push({ at, kind: 'clear', frame: msg });
        for (const [name, timer] of this.pending) {
          clearTimeout(timer);
          this.echo(name);
        }
        this.pending.clear();
        this.playEnd = at;
      }
    });
  }

  echo(name) {
    if (this.client.socket.readyState !== 1) return;
    this.client.mark(name);
    this.log.push({ at: performance.now(), kind: 'echo', name });
  }

  marks() {
    return this.log.filter((e) => e.kind === 'mark').map((e) => e.name);
  }

  echoed(name) {
    return this.log.some((e) => e.kind === 'echo' && e.name === name);
  }

  /** Frames received after `at` (performance.now() time). */
  after(at, kind) {
    return this.log.filter((e) => e.at >= at && (!kind || e.kind === kind));
  }
}

/** Sends caller audio (silence) in real time until stopped. */
export function streamCallerAudio(client, bytesFor = () => client.silence()) {
  let stopped = false;
  (async () => {
    while (!stopped && client.socket.readyState === 1) {
      client.media(bytesFor());
      await sleep(client.frameMs);
    }
  })();
  return () => {
    stopped = true;
  };
}

