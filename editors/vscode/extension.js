// The cnndsl extension: .cnn files get the TextMate grammar (package.json) and the language server,
// started as `cnndsl lsp` (the command is the setting cnndsl.server.command) and spoken to over stdio.
"use strict";
const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const [command, ...args] = vscode.workspace.getConfiguration("cnndsl").get("server.command");
  const server = { command, args, transport: TransportKind.stdio };
  client = new LanguageClient("cnndsl", "cnndsl language server", server, {
    documentSelector: [{ scheme: "file", language: "cnn" }, { scheme: "untitled", language: "cnn" }],
  });
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
