// Render every plot of a DVC plots page with the Vega libraries inlined in it, in Node, offline.
const fs = require("fs");
const vm = require("vm");
const html = fs.readFileSync(process.argv[2], "utf8");
const context = { console, setTimeout, clearTimeout };
context.addEventListener = () => {}; context.removeEventListener = () => {};
context.window = context; context.self = context; context.globalThis = context;
vm.createContext(context);
const scripts = [...html.matchAll(/<script>\/\* ([a-z-]+) \*\/\n([\s\S]*?)\n    <\/script>/g)];
for (const [, , code] of scripts) vm.runInContext(code, context);
const specs = [...html.matchAll(/var spec = ([\s\S]*?);\n\s*vegaEmbed/g)].map((m) => JSON.parse(m[1]));
(async () => {
  const titles = [];
  for (const spec of specs) {
    const compiled = context.vegaLite.compile(spec).spec;
    const view = new context.vega.View(context.vega.parse(compiled), { renderer: "none" });
    const svg = await view.toSVG();
    titles.push(spec.title.text || spec.title);
    if (!svg.includes("<svg")) throw new Error("no SVG");
  }
  console.log(JSON.stringify({ scripts: scripts.map((s) => s[1]), titles, embed: typeof context.vegaEmbed }));
})().catch((e) => { console.error(e); process.exit(1); });
