// Drives Cardea's demo page in headless Chromium with a fake camera and microphone,
// and prints one JSON line: what the browser saw.
// Usage: node browser.mjs <page-url> <seconds> [echo|viewer]
//   echo:   the echo test (window.cardea), started by ?autostart=1
//   viewer: the streams view (window.cardea.viewer), started by ?watch=<id>
//   phone:  the phone view (window.cardea.phone), driven by ?phone=1&user=…; prints
//           "registered" once registered, and stops early once the call hung up.
//   wall:   the camera wall at / (window.cardea.wall): prints "ready" once the page
//           runs, then samples every tile twice a second.
//   whep:   the plain WHEP player at /player (window.whep); WHEP_RESTART_AT=<ms> restarts
//           ICE by PATCH once at that time; at the end the player DELETEs its resource.
// SCREENSHOT=<png> takes a screenshot of the page at the end.
// FAKE_AUDIO=<wav> makes that file the fake microphone (looped).
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(join(dirname(fileURLToPath(import.meta.url)), '../../web/package.json'));
const { chromium } = require('playwright-core');

const [url, secondsArg, modeArg] = process.argv.slice(2);
const mode = modeArg || 'echo';
const seconds = Number(secondsArg || 10);
const profile = mkdtempSync(join(tmpdir(), 'cardea-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox', '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
    '--allow-loopback-in-peer-connection', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-features=WebRtcHideLocalIpsWithMdns', '--autoplay-policy=no-user-gesture-required',
    ...(process.env.FAKE_AUDIO ? ['--use-file-for-fake-audio-capture=' + process.env.FAKE_AUDIO] : []),
    // A page served from a test network's address (not loopback) still gets the camera.
    ...(['localhost', '127.0.0.1'].includes(new URL(url).hostname) ? [] : ['--unsafely-treat-insecure-origin-as-secure=' + new URL(url).origin]),
  ],
});
const result = { url, webrtcup: false, framesDecoded: 0, audioPacketsReceived: 0, errors: [], console: [], samples: [] };
const t0 = Date.now();
try {
  const page = await context.newPage();
  page.on('console', (m) => { if (result.console.length < 200) result.console.push(m.text()); });
  page.on('pageerror', (e) => result.errors.push('pageerror: ' + e.message));
  await page.goto(url);
  if (process.env.WATCH_ON_STDIN) {
    // The test picks the moment: it writes the mountpoint id on stdin.
    await page.waitForFunction(() => window.cardea && window.cardea.viewer && window.cardea.viewer.watch);
    console.log('ready');
    const id = await new Promise((resolve) => process.stdin.once('data', (d) => resolve(String(d).trim())));
    process.stdin.destroy();
    result.watchSentMs = Date.now() - t0;
    await page.evaluate((id) => window.cardea.viewer.watch(id), id);
  }
  const deadline = Date.now() + seconds * 1000;
  if (mode === 'wall') {
    await page.setViewportSize({ width: 1280, height: 760 });
    await page.waitForFunction(() => window.cardea && window.cardea.wall);
    console.log('ready');
    result.wall = [];
    while (Date.now() < deadline) {
      await page.waitForTimeout(500);
      const w = await page.evaluate(() => ({ tiles: window.cardea.wall.tiles, errors: window.cardea.wall.errors }));
      result.wall.push({ ms: Date.now() - t0, tiles: w.tiles });
      result.pageErrors = w.errors;
    }
  }
  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT });
  if (mode === 'phone') {
    let said = false;
    while (Date.now() < deadline) {
      await page.waitForTimeout(250);
      const p = await page.evaluate(() => {
        const p = window.cardea && window.cardea.phone;
        if (!p) return null;
        return { registered: p.registered, accepted: p.accepted, hungup: p.hungup, events: p.events, errors: p.errors, peaks: p.peaks, earlyPeaks: p.earlyPeaks, updates: p.updates, stats: p.stats, incoming: p.incoming ? { caller: p.incoming.caller, displayname: p.incoming.displayname } : null };
      });
      if (!p) continue;
      if (p.registered && !said) { said = true; console.log('registered'); }
      result.phone = p;
      result.samples.push({ ms: Date.now() - t0, stats: p.stats });
      if (p.hungup && Date.now() > (result.hungupAt || (result.hungupAt = Date.now() + 1500))) break;
    }
  }
  while (mode !== 'phone' && mode !== 'wall' && Date.now() < deadline) {
    await page.waitForTimeout(500);
    const s = await page.evaluate(async (mode) => {
      const c = mode === 'whep' ? window.whep : window.cardea && (mode === 'viewer' ? window.cardea.viewer : window.cardea);
      const pc = c && (c.pc || (c.handle && c.handle.webrtcStuff && c.handle.webrtcStuff.pc));
      let framesSent = 0, pair = null, frames = 0, audio = 0, lost = 0, codecs = [], width = 0, height = 0, firstFrameMs = null, video = [];
      // Inbound video's repair figures, summed over its streams: what a lossy network costs.
      const videoIn = { nackCount: 0, pliCount: 0, freezeCount: 0, totalFreezesDuration: 0, retransmittedPacketsReceived: 0, packetsLost: 0, packetsReceived: 0, keyFramesDecoded: 0 };
      if (pc) {
        const report = await pc.getStats();
        report.forEach((r) => {
          if (r.type === 'inbound-rtp' && r.kind === 'video') {
            for (const k of Object.keys(videoIn)) videoIn[k] += r[k] || 0;
            frames += r.framesDecoded || 0; width = r.frameWidth || width; height = r.frameHeight || height;
            video.push({ mid: r.mid, frames: r.framesDecoded || 0, width: r.frameWidth || 0, height: r.frameHeight || 0 });
          }
          if (r.type === 'inbound-rtp' && r.kind === 'audio') audio += r.packetsReceived || 0;
          if (r.type === 'outbound-rtp' && r.kind === 'video') framesSent += r.framesEncoded || 0;
          if (r.type === 'inbound-rtp') lost += r.packetsLost || 0;
          if (r.type === 'codec') codecs.push(r.mimeType);
        });
        // The pair ICE chose: its candidates' types (host, srflx, prflx, relay) and addresses.
        report.forEach((t) => {
          if (t.type !== 'transport' || !t.selectedCandidatePairId) return;
          const p = report.get(t.selectedCandidatePairId);
          const l = p && report.get(p.localCandidateId), r = p && report.get(p.remoteCandidateId);
          if (l && r) pair = { local: l.candidateType, localAddress: l.address + ':' + l.port, remote: r.candidateType, remoteAddress: r.address + ':' + r.port };
        });
      }
      const localSdp = pc && pc.localDescription ? pc.localDescription.sdp : null;
      video.sort((a, b) => String(a.mid).localeCompare(String(b.mid)));
      return { framesSent, video, videoIn, pair, lost, firstFrameMs: c ? c.firstFrameMs : null, webrtcup: !!(c && c.webrtcup), started: !!(c && c.started), frames, audio, width, height, errors: c ? c.errors : ['no page state'], events: c ? c.events : [], codecs, localSdp };
    }, mode);
    Object.assign(result, { framesSent: s.framesSent, video: s.video, videoIn: s.videoIn, selectedPair: s.pair, packetsLost: s.lost, webrtcup: s.webrtcup, framesDecoded: s.frames, audioPacketsReceived: s.audio, pageErrors: s.errors, events: s.events, codecs: s.codecs, localSdp: s.localSdp, started: s.started, firstFrameMs: s.firstFrameMs, width: s.width, height: s.height });
    result.samples.push({ ms: Date.now() - t0, frames: s.frames, audio: s.audio });
    if (mode === 'whep') {
      const restartAt = Number(process.env.WHEP_RESTART_AT || 0);
      if (restartAt && !result.restartedAtMs && Date.now() - t0 >= restartAt) {
        result.restartedAtMs = Date.now() - t0;
        result.restartOk = await page.evaluate(() => window.whep.restart());
      }
      result.whep = await page.evaluate(() => ({ patches: window.whep.patches, sent: window.whep.sent, restarts: window.whep.restarts, timings: window.whep.timings, iceServers: window.whep.iceServers, etag: window.whep.etag }));
    }
    // The browser's ICE username fragment over time: an ICE restart changes it.
    const ufrag = s.localSdp && (s.localSdp.match(/a=ice-ufrag:(\S+)/) || [])[1];
    result.ufrags = result.ufrags || [];
    if (ufrag && !result.ufrags.includes(ufrag)) result.ufrags.push(ufrag);
  }
  if (mode === 'whep') result.deleteStatus = await page.evaluate(() => window.whep.stop());
} catch (e) {
  result.errors.push(String(e));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
