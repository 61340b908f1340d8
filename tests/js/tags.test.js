// The tag grammar and writer of javascript/hypernet.js against the case table lib_hypernet/prompt/ passes too.
// Run: node --test tests/js/   (tests/prompt/test_prompt_tags.py runs this as part of pytest)
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const fs = require("node:fs");

const sdHypernet = require(path.join(__dirname, "..", "..", "javascript", "hypernet.js"));
const cases = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "fixtures", "tag_cases.json"), "utf8"));

function plain(tag) {
    const {start, end, name, strength, self, cross, step_start, step_stop, valid, error_kind} = tag;
    return {start, end, name, strength, self, cross, step_start, step_stop, valid, error_kind};
}

test("the namespace is the only global", () => {
    assert.equal(typeof globalThis.sdHypernet, "object");
    assert.equal(globalThis.sdHypernet, sdHypernet);
});

for (const c of cases.find) {
    test(`findTags ${JSON.stringify(c.prompt)}`, () => {
        assert.deepEqual(sdHypernet.findTags(c.prompt).map(plain), c.tags);
    });
}

for (const c of cases.edit) {
    test(`${c.op} ${JSON.stringify(c.prompt)} ${JSON.stringify(c.key || c.name || "")}`, () => {
        let got;
        switch (c.op) {
        case "set": got = sdHypernet.setArgument(c.prompt, c.index, c.key, c.value); break;
        case "rename": got = sdHypernet.renameTag(c.prompt, c.index, c.name); break;
        case "remove": got = sdHypernet.removeTag(c.prompt, c.index); break;
        case "remove_named": got = sdHypernet.removeTagsNamed(c.prompt, c.name); break;
        case "add": got = sdHypernet.addTag(c.prompt, c.name, c.strength); break;
        case "toggle": got = sdHypernet.toggleTag(c.prompt, c.name, c.strength); break;
        default: assert.fail(`unknown op ${c.op}`);
        }
        assert.equal(got, c.expect);
    });
}

test("formatNumber", () => {
    for (const [value, text] of cases.format_number) assert.equal(sdHypernet.formatNumber(value), text, String(value));
});

for (const [name, strength, expect] of cases.format_tag) {
    test(`formatTag ${JSON.stringify(name)} ${strength}`, () => {
        if (expect === null) assert.throws(() => sdHypernet.formatTag(name, strength), {name: "TagError", kind: "bad_name"});
        else assert.equal(sdHypernet.formatTag(name, strength), expect);
    });
}

test("an index past the last tag is an error, a name with ':' or '>' cannot be written", () => {
    assert.throws(() => sdHypernet.removeTag("<hypernet:x:1>", 1), RangeError);
    assert.throws(() => sdHypernet.addTag("", "a:b", 1), {kind: "bad_name"});
    assert.throws(() => sdHypernet.renameTag("<hypernet:x:1>", 0, "a>b"), {kind: "bad_name"});
});

test("sendTo appends the tag to the prompt box cardClicked uses, tells gradio and switches tabs", () => {
    const box = {value: "a cat", dispatched: 0};
    const asked = [];
    const switched = [];
    globalThis.gradioApp = () => ({querySelector: (sel) => { asked.push(sel); return sel === "#img2img_prompt > label > textarea" ? box : null; }});
    globalThis.updateInput = (t) => { t.dispatched += 1; };
    globalThis.switch_to_img2img = () => switched.push("img2img");
    try {
        assert.deepEqual(sdHypernet.sendTo("img2img", "<hypernet:x:0.8>"), []);
        assert.equal(box.value, "a cat <hypernet:x:0.8>");
        assert.deepEqual([box.dispatched, switched], [1, ["img2img"]]);
        sdHypernet.cardClicked({target: {closest: () => ({id: "img2img_cards"})}}, "y", 1);
        assert.equal(box.value, "a cat <hypernet:x:0.8> <hypernet:y:1>");
        assert.equal(new Set(asked).size, 1, "one prompt selector");
    } finally {
        delete globalThis.gradioApp;
        delete globalThis.updateInput;
        delete globalThis.switch_to_img2img;
    }
});

const config = JSON.stringify({rows: 2, default: 1, labels: {anime: "anime [0123456789 · SD1]", "my style": "my style [abcdef0123 · SDXL]"},
    aliases: {"sub/anime": "anime"}});

test("panelValues: tags in order into the rows, unknown files and extra tags are reported", () => {
    const v = sdHypernet.panelValues("a <hypernet:anime:0.8:self=0.5:stop=0.6> <hypernet:gone> <hypernet:my style:1>", config);
    assert.deepEqual(v.slice(0, 12), ["anime [0123456789 · SD1]", 0.8, 0.5, 0.8, 0, 0.6, "gone", 1, 1, 1, 0, 1]);
    assert.match(v[12], /gone: not in the hypernetwork folder/);
    assert.match(v[12], /3 hypernet tags; the panel shows the first 2/);
    const alias = sdHypernet.panelValues("<hypernet:sub/anime:0.5>", config);
    assert.equal(alias[0], "anime [0123456789 · SD1]");
    assert.equal(alias[12], "", "a tag naming a file by its relative path is a known file");
    const empty = sdHypernet.panelValues("a cat", config);
    assert.deepEqual(empty, ["None", 1, 1, 1, 0, 1, "None", 1, 1, 1, 0, 1, ""]);
});

test("panelChoose: add, rename, remove; panelSet: one argument of that row's tag", () => {
    let p = sdHypernet.panelChoose(0, "a cat", config, "anime [0123456789 · SD1]", 0.8);
    assert.equal(p, "a cat <hypernet:anime:0.8>");
    p = sdHypernet.panelChoose(1, p, config, "my style [abcdef0123 · SDXL]", 1);
    assert.equal(p, "a cat <hypernet:anime:0.8> <hypernet:my style:1>");
    p = sdHypernet.panelSet(1, "strength", p, config, 0.30000000000000004);
    assert.equal(p, "a cat <hypernet:anime:0.8> <hypernet:my style:0.3>");
    p = sdHypernet.panelSet(0, "self", p, config, 0.8);
    assert.equal(p, "a cat <hypernet:anime:0.8> <hypernet:my style:0.3>");
    p = sdHypernet.panelSet(0, "cross", p, config, 0.2);
    assert.equal(p, "a cat <hypernet:anime:0.8:cross=0.2> <hypernet:my style:0.3>");
    p = sdHypernet.panelChoose(0, p, config, "my style [abcdef0123 · SDXL]", 0.8);
    assert.equal(p, "a cat <hypernet:my style:0.8:cross=0.2> <hypernet:my style:0.3>");
    p = sdHypernet.panelChoose(0, p, config, "None", 1);
    assert.equal(p, "a cat <hypernet:my style:0.3>");
    assert.equal(sdHypernet.panelSet(1, "strength", p, config, 2), p, "a row without a tag changes nothing");
});
