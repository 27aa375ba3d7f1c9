// Children of `npm run bench` part 4b (sweep cost vs number of circuits).
//
//   sweep-child.ts backends <count>   HTTP servers on 127.0.0.1 (port 0) answering 200 on any
//                                     path; prints their ports; lives until stdin closes
//   sweep-child.ts sweep              one runSweep in a fresh process (like a Lambda), started
//                                     when the parent says go; prints stats, wall time, memory
//                                     and the WebSocket frames the Neon driver sent
import http from 'node:http';
import v8 from 'node:v8';
import { countWebSocketFrames, emit, parentMessages } from '../lib/common.js';

async function backends(count: number): Promise<void> {
  const ports: number[] = [];
  for (let i = 0; i < count; i++) {
    const server = http.createServer((_req, res) => void res.writeHead(200, { 'Content-Length': '2' }).end('ok'));
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    ports.push((server.address() as { port: number }).port);
  }
  emit({ ports });
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
}

async function sweep(): Promise<void> {
  const frames = await countWebSocketFrames();
  const { createRuntime, closeRuntime, Invocation } = await import('../../../lib/runtime.js');
  const { runSweep, closeProbers } = await import('../../../lib/health/index.js');
  const { benchConfig } = await import('../lib/fixtures.js');
  const next = parentMessages();
  const rt = createRuntime(benchConfig());
  const inv = new Invocation(rt);
  await rt.db.query('SELECT 1');
  await rt.etcd.kv.range({ key: Buffer.from('warm') });
  global.gc?.();
  const base = process.memoryUsage();
  emit({ ready: true });
  await next();

  let rssPeak = base.rss;
  let heapPeak = base.heapUsed;
  const sample = () => {
    const rss = process.memoryUsage.rss();
    const heap = v8.getHeapStatistics().used_heap_size;
    if (rss > rssPeak) rssPeak = rss;
    if (heap > heapPeak) heapPeak = heap;
  };
  const timer = setInterval(sample, 10);
  const f0 = frames();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let events = 0;
  const stats = await runSweep(inv, { publish: async (e) => void (events += e.length) });
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  sample();
  clearInterval(timer);
  const f1 = frames();
  emit({
    stats,
    wallMs,
    events,
    cpuMs: (cpu.user + cpu.system) / 1000,
    wsFramesSent: f1.sent - f0.sent,
    memory: { baseRss: base.rss, baseHeap: base.heapUsed, rssPeak, heapPeak },
  });
  await next(); // the parent has scraped etcd's counters: the lease revoke comes after
  closeProbers();
  await inv.close();
  await closeRuntime(rt);
}

const mode = process.argv[2];
(mode === 'backends' ? backends(Number(process.argv[3])) : mode === 'sweep' ? sweep() : Promise.reject(new Error(`unknown mode ${mode}`))).then(
  () => {
    if (mode !== 'backends') process.exit(0);
  },
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
