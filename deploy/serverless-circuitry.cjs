// A local Serverless Framework (osls) plugin for circuitry's deployment. CommonJS because osls
// loads plugins with require(). Listed in serverless.yml after serverless-esbuild.
//
// 1. `${requiredParam:<name>}`: a variable source for the per-stage parameters that have no
//    default (the VPC ids). `${param:x}` alone fails with `Value not found at "param" source`;
//    this one resolves `${param:<name>}` and, when it is missing or malformed, fails with a
//    message that names the parameter, what it is, and how to pass it. osls reports every
//    failing variable at once, so each missing parameter is named.
// 2. Deterministic maximum compression of the function zips: serverless-esbuild zips with
//    archiver's default deflate level (1). After it has written the zips (same hook, later
//    plugin), every entry is re-deflated at level 9 (about 14 % smaller), keeping entry order,
//    names, attributes, timestamps (serverless-esbuild's fixed 1980 date) and CRCs, so the same
//    code still gives byte-identical zips.
'use strict';
/* global require, module, Buffer, process */
/* eslint-disable @typescript-eslint/no-require-imports -- CommonJS on purpose, see above */

const fs = require('node:fs');
const path = require('node:path');
const zlib = require('node:zlib');

/** What each required parameter is, for the error message (README "Deploy" has the table). */
const REQUIRED = {
  securityGroupIds: {
    what: 'comma-separated security group ids for the functions (the VPC that reaches etcd)',
    example: 'sg-0123456789abcdef0',
    pattern: /^sg-[0-9a-f]{8,17}$/,
  },
  subnetIds: {
    what: 'comma-separated private subnet ids with egress to the database and EventBridge (NAT or VPC endpoint)',
    example: 'subnet-0a1b2c3d4e5f60718,subnet-0f1e2d3c4b5a69788',
    pattern: /^subnet-[0-9a-f]{8,17}$/,
  },
};

function requiredParamSource(serverless) {
  // ServerlessError: osls prints its message alone, without a stack trace.
  const Err = serverless.classes?.Error ?? Error;
  return {
    async resolve({ address, resolveVariable, options }) {
      const name = String(address ?? '');
      const spec = REQUIRED[name];
      const stage = options.stage ?? serverless.service?.provider?.stage ?? 'dev';
      const how = spec
        ? `pass it as --param="${name}=${spec.example}" (or set params.${stage}.${name} in serverless.yml); see README "Deploy"`
        : `pass it as --param="${name}=..." (or set params.${stage}.${name} in serverless.yml)`;
      const value = await resolveVariable(`param:${name}, null`);
      if (value === null || value === undefined || String(value).trim() === '') {
        throw new Err(`missing required parameter "${name}" for stage "${stage}"${spec ? `: ${spec.what}` : ''}; ${how}`);
      }
      if (spec) {
        const bad = String(value)
          .split(',')
          .map((s) => s.trim())
          .filter((s) => !spec.pattern.test(s));
        if (bad.length > 0) {
          throw new Err(`parameter "${name}" for stage "${stage}" has invalid id(s) ${bad.map((b) => JSON.stringify(b)).join(', ')}: expected ${spec.what}; ${how}`);
        }
      }
      return { value: String(value) };
    },
  };
}

// ---- zips ------------------------------------------------------------------------------------

const CRC_TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();
function crc32(buf) {
  let c = -1;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

/** Entries of a zip (no zip64, no encryption: what serverless-esbuild writes). */
function readZip(buf, file) {
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 0xffff); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error(`${file}: not a zip file`);
  const count = buf.readUInt16LE(eocd + 10);
  let p = buf.readUInt32LE(eocd + 16);
  const entries = [];
  for (let n = 0; n < count; n++) {
    if (buf.readUInt32LE(p) !== 0x02014b50) throw new Error(`${file}: bad central directory`);
    const e = {
      versionMadeBy: buf.readUInt16LE(p + 4),
      flags: buf.readUInt16LE(p + 8),
      method: buf.readUInt16LE(p + 10),
      time: buf.readUInt16LE(p + 12),
      date: buf.readUInt16LE(p + 14),
      crc: buf.readUInt32LE(p + 16),
      compressedSize: buf.readUInt32LE(p + 20),
      size: buf.readUInt32LE(p + 24),
      internalAttrs: buf.readUInt16LE(p + 36),
      externalAttrs: buf.readUInt32LE(p + 38),
      offset: buf.readUInt32LE(p + 42),
    };
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    e.name = buf.subarray(p + 46, p + 46 + nameLen);
    p += 46 + nameLen + extraLen + commentLen;
    if (e.flags & 1) throw new Error(`${file}: encrypted entries are not supported`);
    if (e.offset === 0xffffffff || e.compressedSize === 0xffffffff) throw new Error(`${file}: zip64 is not supported`);
    const lh = e.offset;
    if (buf.readUInt32LE(lh) !== 0x04034b50) throw new Error(`${file}: bad local header`);
    const start = lh + 30 + buf.readUInt16LE(lh + 26) + buf.readUInt16LE(lh + 28);
    const raw = buf.subarray(start, start + e.compressedSize);
    if (e.method === 0) e.data = Buffer.from(raw);
    else if (e.method === 8) e.data = zlib.inflateRawSync(raw);
    else throw new Error(`${file}: compression method ${e.method} is not supported`);
    if (e.data.length !== e.size || crc32(e.data) !== e.crc) throw new Error(`${file}: ${e.name.toString()} fails its size or CRC check`);
    entries.push(e);
  }
  return entries;
}

function writeZip(entries) {
  const locals = [];
  const centrals = [];
  let offset = 0;
  for (const e of entries) {
    const isDir = e.name[e.name.length - 1] === 0x2f; // '/'
    const deflated = isDir ? Buffer.alloc(0) : zlib.deflateRawSync(e.data, { level: 9, memLevel: 9 });
    const stored = isDir || deflated.length >= e.data.length;
    const body = stored ? e.data : deflated;
    const method = stored ? 0 : 8;
    // Keep only the UTF-8 name flag (sizes go in the headers); bit 1: "maximum compression".
    const flags = (e.flags & 0x0800) | (method === 8 ? 0x0002 : 0);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(flags, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(e.time, 10);
    local.writeUInt16LE(e.date, 12);
    local.writeUInt32LE(e.crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(e.data.length, 22);
    local.writeUInt16LE(e.name.length, 26);
    local.writeUInt16LE(0, 28);
    locals.push(local, e.name, body);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(e.versionMadeBy, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(flags, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt16LE(e.time, 12);
    central.writeUInt16LE(e.date, 14);
    central.writeUInt32LE(e.crc, 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(e.data.length, 24);
    central.writeUInt16LE(e.name.length, 28);
    central.writeUInt16LE(0, 30);
    central.writeUInt16LE(0, 32);
    central.writeUInt16LE(0, 34);
    central.writeUInt16LE(e.internalAttrs, 36);
    central.writeUInt32LE(e.externalAttrs, 38);
    central.writeUInt32LE(offset, 42);
    centrals.push(central, e.name);
    offset += 30 + e.name.length + body.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

/** Re-deflates every entry of the zip at level 9, in place; returns [before, after] bytes. */
function recompress(file) {
  const before = fs.readFileSync(file);
  const after = writeZip(readZip(before, file));
  // Round trip before replacing anything.
  const check = readZip(after, file);
  if (check.length === 0 && before.length > 22) throw new Error(`${file}: recompressed zip is empty`);
  if (after.length < before.length) fs.writeFileSync(file, after);
  return [before.length, Math.min(before.length, after.length)];
}

class CircuitryDeployPlugin {
  constructor(serverless, options, { log } = {}) {
    this.serverless = serverless;
    this.options = options;
    this.log = log ?? { verbose: () => {}, notice: () => {} };
    this.configurationVariablesSources = { requiredParam: requiredParamSource(serverless) };
    const zips = () => this.recompressArtifacts();
    this.hooks = {
      'before:package:createDeploymentArtifacts': zips,
      'before:deploy:function:packageFunction': zips,
    };
  }

  recompressArtifacts() {
    const service = this.serverless.service;
    const dir = this.serverless.serviceDir ?? process.cwd();
    const done = new Set();
    for (const name of service.getAllFunctions()) {
      const artifact = service.getFunction(name).package?.artifact;
      if (typeof artifact !== 'string' || !artifact.endsWith('.zip')) continue;
      const file = path.resolve(dir, artifact);
      if (done.has(file) || !fs.existsSync(file)) continue;
      done.add(file);
      const [a, b] = recompress(file);
      this.log.verbose(`circuitry: ${path.basename(file)} ${(a / 1024).toFixed(0)} KiB -> ${(b / 1024).toFixed(0)} KiB (deflate level 9)`);
    }
  }
}

module.exports = CircuitryDeployPlugin;
module.exports.recompress = recompress;
module.exports.REQUIRED = REQUIRED;
