// Decode an Ogg Opus stream with libopus 1.5's deep speech enhancement (LACE / NoLACE), for the codec-repair
// table of benchmarks/resculpt_model.py: the peer its issue names, built to WebAssembly by the npm package
// @wasm-audio-decoders/opus-ml (scripts/bench-venv.sh installs it under .venv-bench/node).
//
//   node benchmarks/peers/opus_ml_decode.mjs MODE < in.opus > out.f32     MODE: none | lace | nolace
//
// Reads a mono Ogg Opus stream on stdin and writes the decoded 48 kHz float32 little-endian samples to stdout,
// the stream's pre-skip not removed (the caller aligns by cross-correlation, as it aligns ffmpeg's decode).
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = process.env.OPUS_ML_NODE_PREFIX || path.join(here, "..", "..", ".venv-bench", "node");
const require = createRequire(path.join(root, "package.json"));
const { OpusMLDecoder } = await import(require.resolve("@wasm-audio-decoders/opus-ml"));

const mode = process.argv[2] || "nolace";
if (!["none", "lace", "nolace"].includes(mode)) {
  console.error(`mode must be none, lace or nolace, got ${mode}`);
  process.exit(2);
}

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const ogg = Buffer.concat(chunks);

// Ogg pages: "OggS", 27-byte header, a segment table of lacing values; a packet ends at a lacing value < 255.
const packets = [];
let cur = [];
for (let p = 0; p + 27 <= ogg.length; ) {
  if (ogg.toString("latin1", p, p + 4) !== "OggS") throw new Error(`no Ogg page at byte ${p}`);
  const nseg = ogg[p + 26];
  let q = p + 27 + nseg;
  for (let i = 0; i < nseg; i++) {
    const len = ogg[p + 27 + i];
    cur.push(ogg.subarray(q, q + len));
    q += len;
    if (len < 255) {
      packets.push(Buffer.concat(cur));
      cur = [];
    }
  }
  p = q;
}
const head = packets[0];
if (!head || head.toString("latin1", 0, 8) !== "OpusHead") throw new Error("not an Ogg Opus stream");
if (head[9] !== 1) throw new Error(`expected a mono stream, got ${head[9]} channels`);
const frames = packets.slice(2).map((b) => new Uint8Array(b.buffer, b.byteOffset, b.length));

const dec = new OpusMLDecoder({
  speechQualityEnhancement: mode, channels: 1, streamCount: 1, coupledStreamCount: 0,
  channelMappingTable: [0], sampleRate: 48000, preSkip: 0,
});
await dec.ready;
const out = dec.decodeFrames(frames);
if (out.errors.length) console.error(`${out.errors.length} decode errors, first: ${out.errors[0].message}`);
const pcm = out.channelData[0].subarray(0, out.samplesDecoded);
process.stdout.write(Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength));
dec.free();
