// systemd/bastiond.service is hardened as far as the namespace-creating design allows (issue #3):
// `systemd-analyze verify` passes and the offline security exposure is at most 3.0.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const UNIT = fileURLToPath(new URL('../../systemd/bastiond.service', import.meta.url));
const MAX_EXPOSURE = 3.0;

// verify checks that ExecStart= exists and Documentation= man pages are installed; the copy points
// at /bin/true and drops Documentation= so the check is about the unit, not this machine.
function unitCopy() {
  const dir = mkdtempSync(join(tmpdir(), 'bastion-unit-'));
  const text = readFileSync(UNIT, 'utf8')
    .replace(/^ExecStart=.*$/m, 'ExecStart=/bin/true')
    .replace(/^Documentation=.*\n/m, '');
  const path = join(dir, 'bastiond.service');
  writeFileSync(path, text);
  return { dir, path };
}

function analyze(args) {
  return spawnSync('systemd-analyze', args, { encoding: 'utf8' });
}

const haveAnalyze = !analyze(['--version']).error;

test('bastiond.service passes systemd-analyze verify', { skip: !haveAnalyze && 'no systemd-analyze' }, () => {
  const { dir, path } = unitCopy();
  try {
    const r = analyze(['verify', path]);
    assert.equal(r.status, 0, `verify failed:\n${r.stdout}${r.stderr}`);
    assert.doesNotMatch(r.stderr, /bastiond\.service/, `verify warned:\n${r.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(`bastiond.service exposure is at most ${MAX_EXPOSURE}`, { skip: !haveAnalyze && 'no systemd-analyze' }, () => {
  const { dir, path } = unitCopy();
  try {
    const r = analyze(['security', '--offline=true', `--threshold=${MAX_EXPOSURE * 10}`, path]);
    const m = /Overall exposure level for bastiond\.service: (\d+\.\d+)/.exec(r.stdout + r.stderr);
    assert.ok(m, `no exposure level in:\n${r.stdout}${r.stderr}`);
    const level = Number(m[1]);
    console.log(`bastiond.service exposure: ${level}`);
    assert.ok(level <= MAX_EXPOSURE, `exposure ${level} > ${MAX_EXPOSURE}`);
    assert.equal(r.status, 0, `--threshold=${MAX_EXPOSURE * 10} failed`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
