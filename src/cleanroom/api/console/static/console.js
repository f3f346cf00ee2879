// Cleanroom console: what the browser checks itself, with the Web Crypto API
// (Ed25519 and SHA-256) and nothing else — no library, nothing from the net.
//
// - a C2SP signed note (the log's checkpoint) against the log's verifier key,
//   and the tlog-cosignature/v1 cosignatures of the witnesses;
// - an RFC 9162 inclusion proof of an entry, and a consistency proof from the
//   last checkpoint this browser verified (kept in localStorage);
// - a boost review signed in the browser with the reviewer's own key file
//   (a DSSE envelope of an in-toto statement): the key never leaves the page.
"use strict";

const enc = new TextEncoder();

function b64decode(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function b64encode(bytes) {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

function concat(...parts) {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

function equal(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

const hex8 = (n) => n.toString(16).padStart(8, "0");

// ---- keys (golang.org/x/mod/sumdb/note format) -----------------------------

async function keyHash(name, alg, pub) {
  const d = await sha256(concat(enc.encode(name + "\n"), new Uint8Array([alg]), pub));
  return ((d[0] << 24) >>> 0) + (d[1] << 16) + (d[2] << 8) + d[3];
}

// split on the first n-1 "+" (base64 key material has "+" of its own)
function splitKey(text, n) {
  const parts = [];
  let rest = text.trim();
  for (let i = 0; i < n - 1; i++) {
    const at = rest.indexOf("+");
    if (at < 0) return [];
    parts.push(rest.slice(0, at));
    rest = rest.slice(at + 1);
  }
  return [...parts, rest];
}

async function parseVerifier(vkey) {
  const parts = splitKey(vkey, 3);
  if (parts.length !== 3) throw new Error("a verifier key is name+hash+key");
  const raw = b64decode(parts[2]);
  const alg = raw[0], pub = raw.slice(1);
  if (pub.length !== 32 || (alg !== 1 && alg !== 4)) throw new Error("not an Ed25519 verifier key");
  const id = parseInt(parts[1], 16);
  if ((await keyHash(parts[0], alg, pub)) !== id) throw new Error("the key's hash does not match its name and key");
  const key = await crypto.subtle.importKey("raw", pub, { name: "Ed25519" }, false, ["verify"]);
  return { name: parts[0], id, alg, key };
}

async function parseSigner(skey) {
  const parts = splitKey(skey, 5);
  if (parts.length !== 5 || parts[0] !== "PRIVATE" || parts[1] !== "KEY") throw new Error("a key file holds PRIVATE+KEY+name+hash+key");
  const raw = b64decode(parts[4]);
  if (raw[0] !== 1 || raw.length !== 33) throw new Error("not an Ed25519 signing key");
  const pkcs8 = concat(new Uint8Array([0x30, 0x2e, 2, 1, 0, 0x30, 5, 6, 3, 0x2b, 0x65, 0x70, 4, 0x22, 4, 0x20]), raw.slice(1));
  const key = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, false, ["sign"]);
  return { name: parts[2], id: parseInt(parts[3], 16), key };
}

// ---- signed notes and checkpoints ------------------------------------------

function splitNote(text) {
  const at = text.lastIndexOf("\n\n");
  if (at < 0) throw new Error("not a signed note");
  const body = text.slice(0, at + 1);
  const sigs = text.slice(at + 2).split("\n").filter((l) => l).map((line) => {
    const m = line.match(/^\u2014 (\S+) (\S+)$/);
    if (!m) throw new Error("malformed signature line");
    const raw = b64decode(m[2]);
    const id = ((raw[0] << 24) >>> 0) + (raw[1] << 16) + (raw[2] << 8) + raw[3];
    return { name: m[1], id, sig: raw.slice(4) };
  });
  const lines = body.split("\n");
  return { body, sigs, origin: lines[0], size: Number(lines[1]), root: b64decode(lines[2]) };
}

async function checkSignature(note, v) {
  for (const s of note.sigs) {
    if (s.name !== v.name || s.id !== v.id) continue;
    if (v.alg === 1) return crypto.subtle.verify({ name: "Ed25519" }, v.key, s.sig, enc.encode(note.body));
    if (s.sig.length !== 72) return false;
    let ts = 0n;
    for (let i = 0; i < 8; i++) ts = (ts << 8n) + BigInt(s.sig[i]);
    const msg = enc.encode(`cosignature/v1\ntime ${ts}\n` + note.body);
    return crypto.subtle.verify({ name: "Ed25519" }, v.key, s.sig.slice(8), msg);
  }
  return null; // not signed by this key
}

// ---- RFC 9162 proofs --------------------------------------------------------

const nodeHash = async (l, r) => sha256(concat(new Uint8Array([1]), l, r));
const isOdd = (n) => n % 2 === 1;
const half = (n) => Math.floor(n / 2);

async function inclusionRoot(index, size, leaf, proof) {
  if (index >= size) throw new Error("index beyond the tree");
  let fn = index, sn = size - 1, r = leaf;
  for (const p of proof) {
    if (sn === 0) throw new Error("proof too long");
    if (isOdd(fn) || fn === sn) {
      r = await nodeHash(p, r);
      if (!isOdd(fn)) while (!isOdd(fn) && fn !== 0) { fn = half(fn); sn = half(sn); }
    } else {
      r = await nodeHash(r, p);
    }
    fn = half(fn); sn = half(sn);
  }
  if (sn !== 0) throw new Error("proof too short");
  return r;
}

async function checkConsistency(oldSize, oldRoot, newSize, newRoot, proof) {
  if (oldSize === newSize) return proof.length === 0 && equal(oldRoot, newRoot);
  if (oldSize === 0) return true;
  if (Number.isInteger(Math.log2(oldSize))) proof = [oldRoot, ...proof];
  let fn = oldSize - 1, sn = newSize - 1;
  while (isOdd(fn)) { fn = half(fn); sn = half(sn); }
  let fr = proof[0], sr = proof[0];
  for (const c of proof.slice(1)) {
    if (sn === 0) return false;
    if (isOdd(fn) || fn === sn) {
      fr = await nodeHash(c, fr); sr = await nodeHash(c, sr);
      if (!isOdd(fn)) while (!isOdd(fn) && fn !== 0) { fn = half(fn); sn = half(sn); }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn = half(fn); sn = half(sn);
  }
  return sn === 0 && equal(fr, oldRoot) && equal(sr, newRoot);
}

// ---- what the pages do -------------------------------------------------------

function say(el, ok, text) {
  el.textContent = text;
  el.className = "result " + (ok ? "ok" : "bad");
}

async function verifyNote(text, logVkey, witnessVkeys) {
  const note = splitNote(text);
  const log = await parseVerifier(logVkey);
  const good = await checkSignature(note, log);
  if (!good) throw new Error(good === null ? "the checkpoint is not signed by this log key" : "the log's signature does not verify");
  const witnesses = {};
  for (const w of witnessVkeys.filter((w) => w)) {
    const v = await parseVerifier(w);
    witnesses[v.name] = await checkSignature(note, v);
  }
  return { note, witnesses };
}

async function rememberConsistent(note) {
  const origin = note.origin;
  const seen = JSON.parse(localStorage.getItem("cleanroom.checkpoint." + origin) || "null");
  let said = "";
  if (seen && seen.size <= note.size) {
    const r = await fetch(`/v1/ledger/proofs/consistency?old=${seen.size}&new=${note.size}`);
    if (!r.ok) throw new Error("no consistency proof from the size this browser saw last");
    const doc = await r.json();
    const ok = await checkConsistency(seen.size, b64decode(seen.root), note.size, note.root, doc.proof.map(b64decode));
    if (!ok) throw new Error(`the log is NOT consistent with the checkpoint this browser verified before (size ${seen.size})`);
    said = ` It extends the checkpoint this browser verified before (size ${seen.size}).`;
  } else if (seen && seen.size > note.size) {
    throw new Error(`this checkpoint (size ${note.size}) is older than one this browser verified (size ${seen.size})`);
  }
  localStorage.setItem("cleanroom.checkpoint." + origin, JSON.stringify({ size: note.size, root: b64encode(note.root) }));
  return said;
}

function markWitnesses(witnesses) {
  const names = [];
  for (const [name, ok] of Object.entries(witnesses)) {
    const cell = document.querySelector(`[data-verdict-for="${CSS.escape(name)}"]`);
    if (cell) cell.textContent = ok === null ? "not signed" : ok ? "verified" : "FAILS";
    if (ok) names.push(name);
  }
  return names;
}

async function onVerifyCheckpoint(ev) {
  ev.preventDefault();
  const out = document.getElementById("verify-result");
  try {
    const text = await (await fetch("/log/checkpoint", { cache: "no-store" })).text();
    const vkeys = document.getElementById("witness-vkeys").value.split(" ");
    const { note, witnesses } = await verifyNote(text, document.getElementById("log-vkey").value, vkeys);
    const cell = document.querySelector(`[data-verdict-for="${CSS.escape(note.origin)}"]`);
    if (cell) cell.textContent = "verified";
    const cosigned = markWitnesses(witnesses);
    const more = await rememberConsistent(note);
    say(out, true, `Verified: the log signed size ${note.size}; cosigned by ${cosigned.join(", ") || "no witness"}.${more}`);
  } catch (e) {
    say(out, false, "Does not verify: " + e.message);
  }
}

async function onVerifyInclusion(ev) {
  ev.preventDefault();
  const out = document.getElementById("verify-result");
  try {
    const text = document.getElementById("checkpoint-note").value;
    const vkeys = document.getElementById("witness-vkeys").value.split(" ");
    const { note, witnesses } = await verifyNote(text, document.getElementById("log-vkey").value, vkeys);
    const index = Number(document.getElementById("entry-index").value);
    const body = enc.encode(document.getElementById("entry-body").value);
    const proof = document.getElementById("entry-proof").value.split(" ").filter((p) => p).map(b64decode);
    const leaf = await sha256(concat(new Uint8Array([0]), body));
    const root = await inclusionRoot(index, note.size, leaf, proof);
    if (!equal(root, note.root)) throw new Error("the proof does not lead to the signed root");
    const cosigned = Object.entries(witnesses).filter(([, ok]) => ok).map(([n]) => n);
    say(out, true, `Verified: entry ${index} is in the log at size ${note.size}, signed by the log` +
      (cosigned.length ? ` and cosigned by ${cosigned.join(", ")}.` : "."));
  } catch (e) {
    say(out, false, "Does not verify: " + e.message);
  }
}

// RFC 8785: JavaScript's own JSON serialisation of strings and numbers, keys
// in UTF-16 code unit order (what Array.prototype.sort does).
function jcs(v) {
  if (v === null || typeof v !== "object") return JSON.stringify(v);
  if (Array.isArray(v)) return "[" + v.map(jcs).join(",") + "]";
  return "{" + Object.keys(v).sort().map((k) => JSON.stringify(k) + ":" + jcs(v[k])).join(",") + "}";
}

async function onSignBoost(ev) {
  ev.preventDefault();
  const form = ev.target;
  const out = form.querySelector(".result");
  try {
    const file = form.querySelector("input[type=file]").files[0];
    if (!file) throw new Error("choose your reviewer key file");
    const signer = await parseSigner(await file.text());
    const at = form.dataset.declaredEntry;
    const r = await fetch(`/v1/ledger/entries/${at}`);
    if (!r.ok) throw new Error(`cannot read the declaration (entry ${at}): HTTP ${r.status}`);
    const entry = await r.json();
    const digest = "sha256:" + [...(await sha256(enc.encode(jcs(entry.entry))))].map((b) => b.toString(16).padStart(2, "0")).join("");
    if (digest !== form.dataset.declaredDigest) throw new Error(`the declaration on the ledger (entry ${at}, ${digest}) is not the one this page shows (${form.dataset.declaredDigest})`);
    const decision = form.querySelector("[name=decision]").value;
    const stmt = {
      _type: form.dataset.statementType,
      subject: [{ name: form.dataset.boost, digest: { sha256: digest.slice(7) } }],
      predicateType: form.dataset.predicateType,
      predicate: { reviewer: signer.name, boost: form.dataset.boost, decision, reviewedOn: Date.now() },
    };
    const payload = enc.encode(jcs(stmt));
    const ptype = "application/vnd.in-toto+json";
    const pae = concat(enc.encode(`DSSEv1 ${ptype.length} ${ptype} ${payload.length} `), payload);
    const sig = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, signer.key, pae));
    const envelope = { payloadType: ptype, payload: b64encode(payload), signatures: [{ keyid: `${signer.name}+${hex8(signer.id)}`, sig: b64encode(sig) }] };
    form.querySelector("[name=envelope]").value = JSON.stringify(envelope);
    say(out, true, `Signed as ${signer.name}; sending…`);
    form.submit();
  } catch (e) {
    say(out, false, "Not signed: " + e.message);
  }
}

function onCopy(ev) {
  const btn = ev.target.closest("button.copy");
  if (!btn) return;
  navigator.clipboard?.writeText(btn.dataset.copy).then(() => {
    btn.textContent = "copied";
    setTimeout(() => { btn.textContent = "copy"; }, 1500);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("verify-checkpoint")?.addEventListener("submit", onVerifyCheckpoint);
  document.getElementById("verify-inclusion")?.addEventListener("submit", onVerifyInclusion);
  for (const f of document.querySelectorAll("form.sign-boost")) f.addEventListener("submit", onSignBoost);
  document.addEventListener("click", onCopy);
});
