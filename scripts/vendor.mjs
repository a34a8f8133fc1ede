// Copies the ES module builds of the browser libraries from node_modules/ into
// static/vendor/ (committed, so serving the site needs no npm), with their licences and
// a versions.json recording exactly what was copied.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

const FILES = {
  // The source maps come along: the builds reference them, and Django's manifest static
  // storage refuses a file whose sourceMappingURL points nowhere.
  dompurify: {
    "dist/purify.es.mjs": "purify.es.mjs",
    "dist/purify.es.mjs.map": "purify.es.mjs.map",
    LICENSE: "LICENSE",
  },
  marked: {
    "lib/marked.esm.js": "marked.esm.js",
    "lib/marked.esm.js.map": "marked.esm.js.map",
    LICENSE: "LICENSE",
  },
};

const versions = {};
for (const [name, files] of Object.entries(FILES)) {
  const source = join("node_modules", name);
  const target = join("static", "vendor", name);
  mkdirSync(target, { recursive: true });
  for (const [from, to] of Object.entries(files)) {
    mkdirSync(dirname(join(target, to)), { recursive: true });
    copyFileSync(join(source, from), join(target, to));
  }
  versions[name] = JSON.parse(readFileSync(join(source, "package.json"), "utf8")).version;
}
writeFileSync(join("static", "vendor", "versions.json"), JSON.stringify(versions, null, 2) + "\n");
console.log("vendored", versions);
