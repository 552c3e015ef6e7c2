#!/usr/bin/env node
// Compiles the contracts with the solc version pinned in package.json and
// writes one artifact per contract to out/<Contract>.json: the ABI, the
// creation bytecode and the runtime bytecode, the shape ethers-rs `abigen!`
// reads. The artifacts are committed, so building the Rust workspace needs no
// Node.js.
//
//   node compile.js          rewrite out/*.json
//   node compile.js --check  compile in memory and exit 1 if a committed
//                            artifact differs from the output
//
// The solc npm package ships the compiler as soljson.js (WebAssembly), and
// `solc.compile` runs it in-process, so nothing is downloaded.

'use strict';

const fs = require('fs');
const path = require('path');
const solc = require('solc');

const CONTRACTS = [
  'UserRegistry',
  'MedicalRecordRegistry',
  'ConsentRegistry',
  'AuditAnchorRegistry',
  'BatchAnchorRegistry',
  // Gas baseline for docs/anchoring.md; only tests deploy it.
  'EventOnlyBatchAnchor',
];
const OUT_DIR = path.join(__dirname, 'out');

// anvil 1.7.1 (the pinned @foundry-rs/anvil-linux-amd64) runs hardfork
// "latest" by default, which `anvil_nodeInfo` reports as "Bpo1". BPO1 changes
// only blob parameters, so its EVM rules are Osaka's, and solc has no "bpo1"
// target. Pinning "osaka" keeps the bytecode fixed when a newer solc changes
// its default target, and keeps every opcode solc may emit (such as Osaka's
// CLZ) one that the node executes.
const EVM_VERSION = 'osaka';

const OPTIMIZER = { enabled: true, runs: 200 };

function compilerInput() {
  const sources = {};
  for (const name of CONTRACTS) {
    const file = `${name}.sol`;
    sources[file] = { content: fs.readFileSync(path.join(__dirname, file), 'utf8') };
  }
  return {
    language: 'Solidity',
    sources,
    settings: {
      evmVersion: EVM_VERSION,
      optimizer: OPTIMIZER,
      outputSelection: {
        '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] },
      },
    },
  };
}

// Sorts object keys recursively so that the artifact text does not depend on
// the order in which solc emits them. Array order is kept, because it is part
// of the ABI.
function sortKeys(value) {
  if (Array.isArray(value)) {
    return value.map(sortKeys);
  }
  if (value !== null && typeof value === 'object') {
    const sorted = {};
    for (const key of Object.keys(value).sort()) {
      sorted[key] = sortKeys(value[key]);
    }
    return sorted;
  }
  return value;
}

function compile() {
  const output = JSON.parse(solc.compile(JSON.stringify(compilerInput())));
  const diagnostics = output.errors || [];
  for (const diagnostic of diagnostics) {
    process.stderr.write(diagnostic.formattedMessage || `${diagnostic.message}\n`);
  }
  if (diagnostics.some((diagnostic) => diagnostic.severity === 'error')) {
    throw new Error('solc reported errors; see the messages above');
  }

  const artifacts = {};
  for (const name of CONTRACTS) {
    const contract = output.contracts[`${name}.sol`][name];
    const artifact = {
      contractName: name,
      sourceName: `${name}.sol`,
      compiler: {
        version: solc.version(),
        evmVersion: EVM_VERSION,
        optimizer: OPTIMIZER,
      },
      abi: contract.abi,
      bytecode: `0x${contract.evm.bytecode.object}`,
      deployedBytecode: `0x${contract.evm.deployedBytecode.object}`,
    };
    artifacts[name] = `${JSON.stringify(sortKeys(artifact), null, 2)}\n`;
  }
  return artifacts;
}

function artifactPath(name) {
  return path.join(OUT_DIR, `${name}.json`);
}

function write(artifacts) {
  fs.mkdirSync(OUT_DIR, { recursive: true });
  for (const [name, text] of Object.entries(artifacts)) {
    fs.writeFileSync(artifactPath(name), text);
    console.log(`wrote ${path.relative(process.cwd(), artifactPath(name))}`);
  }
}

// Returns the relative paths of artifacts that are missing or differ from
// the fresh output.
function staleArtifacts(artifacts) {
  const stale = [];
  for (const [name, text] of Object.entries(artifacts)) {
    const file = artifactPath(name);
    const committed = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null;
    if (committed !== text) {
      stale.push(path.relative(process.cwd(), file));
    }
  }
  return stale;
}

function main() {
  const args = process.argv.slice(2);
  const unknown = args.filter((arg) => arg !== '--check');
  if (unknown.length > 0) {
    console.error(`unknown argument ${unknown[0]}; usage: node compile.js [--check]`);
    process.exit(2);
  }

  const artifacts = compile();
  if (!args.includes('--check')) {
    write(artifacts);
    return;
  }

  const stale = staleArtifacts(artifacts);
  if (stale.length > 0) {
    for (const file of stale) {
      console.error(`stale contract artifact: ${file} does not match the compiled sources`);
    }
    console.error('run `npm run build --prefix contracts` and commit contracts/out/');
    process.exit(1);
  }
  console.log(`contract artifacts are up to date (${CONTRACTS.length} checked)`);
}

try {
  main();
} catch (error) {
  console.error(`compile.js failed: ${error.message}`);
  process.exit(1);
}
