'use strict'
// Test oracle for tests/test_versions.py: answers range questions with npm's own
// `semver` package.  Started once per test session; reads JSON lines
//   {"range": "^1.2", "versions": ["1.2.0", "2.0.0"]}
// from stdin and writes one JSON line back for each:
//   {"valid": true, "results": [true, false], "normalized": ">=1.2.0 <2.0.0-0"}
// "valid" is false (and every result false) when semver rejects the range.
// The package is looked up in $ACP_SEMVER_DIR/node_modules/semver, by default
// <repo>/.cache/npm/node_modules/semver.  The first line written is
//   {"ready": true, "semver": "<version>"}
// or, if the package cannot be loaded, {"ready": false, "error": "..."}.

const path = require('path')
const readline = require('readline')

const dir = process.env.ACP_SEMVER_DIR || path.join(__dirname, '..', '.cache', 'npm')
const pkgDir = path.join(path.resolve(dir), 'node_modules', 'semver')

const send = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

let semver
try {
  semver = require(pkgDir)
  send({ ready: true, semver: require(path.join(pkgDir, 'package.json')).version })
} catch (err) {
  send({ ready: false, error: `cannot load semver from ${pkgDir}: ${err.message}` })
  process.exit(2)
}

const answer = (line) => {
  let request
  try {
    request = JSON.parse(line)
  } catch (err) {
    return { error: `bad request: ${err.message}` }
  }
  let range = null
  try {
    range = new semver.Range(request.range)
  } catch (err) {
    range = null
  }
  const versions = request.versions || []
  return {
    valid: range !== null,
    results: versions.map((v) => range !== null && range.test(v)),
    normalized: range !== null ? range.range : null,
  }
}

const rl = readline.createInterface({ input: process.stdin, terminal: false })
rl.on('line', (line) => {
  if (line.trim()) send(answer(line))
})
rl.on('close', () => process.exit(0))
