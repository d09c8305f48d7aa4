// Tokenize .cnn files with VS Code's own TextMate engine (vscode-textmate on the Oniguruma WebAssembly
// build), as the editor does: `node tokenize.js FILE...` prints, per file, every token as
// [line, start, end, scopes] (0-based, end exclusive) in JSON. Used by tests/test_editor_grammar.py.
"use strict";
const fs = require("fs");
const path = require("path");
const oniguruma = require("vscode-oniguruma");
const textmate = require("vscode-textmate");

async function main(files) {
  const wasm = fs.readFileSync(path.join(path.dirname(require.resolve("vscode-oniguruma")), "onig.wasm"));
  await oniguruma.loadWASM(wasm.buffer);
  const registry = new textmate.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (text) => new oniguruma.OnigString(text),
    }),
    loadGrammar: async () => textmate.parseRawGrammar(
      fs.readFileSync(path.join(__dirname, "syntaxes", "cnn.tmLanguage.json"), "utf8"), "cnn.tmLanguage.json"),
  });
  const grammar = await registry.loadGrammar("source.cnn");
  const result = {};
  for (const file of files) {
    let state = textmate.INITIAL;
    const tokens = [];
    fs.readFileSync(file, "utf8").split(/\r?\n/).forEach((line, number) => {
      const found = grammar.tokenizeLine(line, state);
      for (const token of found.tokens) {
        tokens.push([number, token.startIndex, Math.min(token.endIndex, line.length), token.scopes]);
      }
      state = found.ruleStack;
    });
    result[file] = tokens;
  }
  process.stdout.write(JSON.stringify(result));
}

main(process.argv.slice(2)).catch((error) => { console.error(error); process.exit(1); });
