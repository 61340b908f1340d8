// sd-webui-hypernet: the <hypernet:…> tag grammar (mirrors lib_hypernet/prompt_tags.py), the panel beside
// the prompt (prompt ↔ rows, no Python round trip) and the Extra Networks card toggle.
// One global: window.sdHypernet. Uses the webui's gradioApp(), updateInput() and onUiLoaded().
/* global gradioApp, updateInput, onUiLoaded, opts */

(function(root) {
    "use strict";

    var PREFIX = "<hypernet:";
    var SEPARATOR = " ";
    var TAG_RE = /<hypernet:([^:>]+)((?::[^>]*)?)>/g;
    var NUMBER_RE = /^[+-]?(?:\d(?:_?\d)*(?:\.(?:\d(?:_?\d)*)?)?|\.\d(?:_?\d)*)(?:[eE][+-]?\d(?:_?\d)*)?$/;
    var NAMED = ["self", "cross", "start", "stop", "m", "strength"];
    var ARGUMENT_KEYS = ["strength", "self", "cross", "start", "stop"];
    var DEFAULTS = {start: 0, stop: 1};

    // ------------------------------------------------------------------ numbers
    function parseNumber(text) {
        var s = String(text).trim();
        if (!NUMBER_RE.test(s)) return null;
        var n = Number(s.replace(/_/g, ""));
        return isFinite(n) ? n : null;
    }

    function formatNumber(value) {
        // 4 decimals, ties away from zero (toFixed's rule, and lib_hypernet's ROUND_HALF_UP), no trailing zeros
        var v = Number(value);
        var text = Math.abs(v).toFixed(4);
        if (v < 0) text = "-" + text;
        if (text.indexOf(".") >= 0) text = text.replace(/0+$/, "").replace(/\.$/, "");
        return (text === "-0" || text === "") ? "0" : text;
    }

    // ------------------------------------------------------------------ parsing
    function keyOf(item) {
        if (item.indexOf("=") < 0) return null;
        var key = item.slice(0, item.indexOf("=")).trim().toLowerCase();
        return key === "m" ? "strength" : key;
    }

    function valueOf(item) {
        return item.indexOf("=") >= 0 ? item.slice(item.indexOf("=") + 1) : item;
    }

    function explicit(items) {
        var values = {};
        items.forEach(function(item) {
            var key = keyOf(item) || "strength";
            if (!(key in values)) values[key] = parseNumber(valueOf(item));
        });
        return values;
    }

    // Why lib_hypernet.tags.parse_items rejects these items (null when it accepts them).
    function tagError(parts) {
        if (!parts.length || !parts[0].trim()) return "the hypernetwork name is missing";
        var positional = [];
        var named = {};
        for (var i = 1; i < parts.length; i++) {
            var item = parts[i];
            if (item.indexOf("=") >= 0) {
                var key = item.slice(0, item.indexOf("=")).trim().toLowerCase();
                if (NAMED.indexOf(key) < 0) return "unknown argument " + key;
                if (key in named || ((key === "m" || key === "strength") && ("m" in named || "strength" in named))) {
                    return "argument " + key + " given twice";
                }
                named[key] = valueOf(item);
            } else {
                positional.push(item);
            }
        }
        if (positional.length > 1) return "too many values";
        if (positional.length && ("m" in named || "strength" in named)) return "the strength is given twice";
        var raw = positional.length ? positional[0] : ("m" in named ? named.m : named.strength);
        var checks = [["the strength", raw], ["self", named.self], ["cross", named.cross], ["start", named.start], ["stop", named.stop]];
        for (var j = 0; j < checks.length; j++) {
            if (checks[j][1] !== undefined && parseNumber(checks[j][1]) === null) return checks[j][0] + " must be a number";
        }
        var start = named.start !== undefined ? parseNumber(named.start) : 0;
        var stop = named.stop !== undefined ? parseNumber(named.stop) : 1;
        if (start < 0 || start > 1 || stop < 0 || stop > 1) return "start and stop are fractions between 0 and 1";
        if (start >= stop) return "start must be before stop";
        return null;
    }

    function findTags(prompt) {
        var tags = [];
        var re = new RegExp(TAG_RE.source, "g");
        var m;
        while ((m = re.exec(prompt)) !== null) {
            var text = m[0];
            var parts = text.slice(PREFIX.length, -1).split(":");
            var items = parts.slice(1);
            var values = explicit(items);
            var error = tagError(parts);
            tags.push({
                index: tags.length, start: m.index, end: m.index + text.length, text: text,
                name: parts[0].trim(), items: items,
                strength: values.strength !== undefined ? values.strength : null,
                self: values.self !== undefined ? values.self : null,
                cross: values.cross !== undefined ? values.cross : null,
                step_start: values.start !== undefined ? values.start : null,
                step_stop: values.stop !== undefined ? values.stop : null,
                valid: error === null, error: error,
            });
        }
        return tags;
    }

    // ------------------------------------------------------------------ editing
    function tagAt(prompt, index) {
        var tags = findTags(prompt);
        if (index < 0 || index >= tags.length) {
            throw new RangeError("the prompt has " + tags.length + " <hypernet:…> tag(s); there is no tag " + (index + 1));
        }
        return tags[index];
    }

    function replaceTag(prompt, tag, name, items) {
        return prompt.slice(0, tag.start) + PREFIX + [name].concat(items).join(":") + ">" + prompt.slice(tag.end);
    }

    function checkName(name) {
        var n = String(name).trim();
        if (!n || n.indexOf(":") >= 0 || n.indexOf(">") >= 0) {
            throw new Error(JSON.stringify(n) + " cannot be written in a <hypernet:…> tag");
        }
        return n;
    }

    function setArgument(prompt, index, key, value, defaultStrength) {
        if (ARGUMENT_KEYS.indexOf(key) < 0) throw new Error("unknown argument " + key);
        if (defaultStrength === undefined || defaultStrength === null) defaultStrength = 1;
        var tag = tagAt(prompt, index);
        var items = tag.items.slice();
        var position = -1;
        for (var i = 0; i < items.length; i++) {
            if ((keyOf(items[i]) || "strength") === key) { position = i; break; }
        }
        if (value !== null && value !== undefined && key !== "strength") {
            var strength = explicit(items).strength;
            var dflt = key in DEFAULTS ? DEFAULTS[key] : (strength === undefined || strength === null ? defaultStrength : strength);
            if (Number(value) === dflt) value = null;
        }
        if (value === null || value === undefined) {
            if (position >= 0) items.splice(position, 1);
        } else {
            var number = formatNumber(value);
            if (position < 0) {
                if (key === "strength") items.unshift(number);
                else items.push(key + "=" + number);
            } else if (items[position].indexOf("=") >= 0) {
                items[position] = items[position].slice(0, items[position].indexOf("=")) + "=" + number;
            } else {
                items[position] = number;
            }
        }
        return replaceTag(prompt, tag, tag.name, items);
    }

    function renameTag(prompt, index, name) {
        var tag = tagAt(prompt, index);
        return replaceTag(prompt, tag, checkName(name), tag.items);
    }

    function cut(prompt, start, end) {
        if (start > 0 && prompt.charAt(start - 1) === SEPARATOR) start -= 1;
        else if (start === 0 && prompt.charAt(end) === SEPARATOR) end += 1;
        return prompt.slice(0, start) + prompt.slice(end);
    }

    function removeTag(prompt, index) {
        var tag = tagAt(prompt, index);
        return cut(prompt, tag.start, tag.end);
    }

    function removeTagsNamed(prompt, name) {
        var tags = findTags(prompt);
        for (var i = tags.length - 1; i >= 0; i--) {
            if (tags[i].name === name) prompt = cut(prompt, tags[i].start, tags[i].end);
        }
        return prompt;
    }

    function addTag(prompt, name, strength) {
        var tag = PREFIX + checkName(name) + (strength === null || strength === undefined ? "" : ":" + formatNumber(strength)) + ">";
        if (prompt && !/\s$/.test(prompt)) prompt += SEPARATOR;
        return prompt + tag;
    }

    function toggleTag(prompt, name, strength) {
        var has = findTags(prompt).some(function(t) { return t.name === name; });
        return has ? removeTagsNamed(prompt, name) : addTag(prompt, name, strength);
    }

    // ------------------------------------------------------------------ the panel beside the prompt
    // `config` is the JSON of the panel's hidden config box: {"rows": N, "default": 1, "prefix": "...",
    // "labels": {name: "name [hash] SD1", ...}}.
    function readConfig(configJson) {
        try {
            var c = JSON.parse(configJson || "{}");
            c.labels = c.labels || {};
            c.aliases = c.aliases || {};
            c.rows = c.rows || 0;
            c["default"] = typeof c["default"] === "number" ? c["default"] : 1;
            return c;
        } catch (e) {
            return {labels: {}, aliases: {}, rows: 0, "default": 1, prefix: ""};
        }
    }

    // The file a tag name means (its name, or an alias such as the relative path), null when unknown.
    function resolveName(config, name) {
        if (Object.prototype.hasOwnProperty.call(config.labels, name)) return name;
        if (Object.prototype.hasOwnProperty.call(config.aliases, name)) return config.aliases[name];
        return null;
    }

    function nameOfLabel(config, label) {
        if (label === null || label === undefined || label === "" || label === "None") return null;
        for (var name in config.labels) {
            if (config.labels[name] === label) return name;
        }
        return String(label);
    }

    function escapeHtml(s) {
        return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
    }

    // prompt → [label, strength, self, cross, start, stop] per row, then the status HTML.
    function panelValues(prompt, configJson) {
        var config = readConfig(configJson);
        var tags = findTags(prompt || "");
        var values = [];
        var notes = [];
        for (var i = 0; i < config.rows; i++) {
            var t = tags[i];
            if (!t) {
                values.push("None", config["default"], config["default"], config["default"], 0, 1);
                continue;
            }
            var strength = t.strength === null ? config["default"] : t.strength;
            var file = resolveName(config, t.name);
            values.push(file !== null ? config.labels[file] : t.name, strength,
                t.self === null ? strength : t.self, t.cross === null ? strength : t.cross,
                t.step_start === null ? 0 : t.step_start, t.step_stop === null ? 1 : t.step_stop);
        }
        tags.forEach(function(t) {
            if (resolveName(config, t.name) === null) notes.push("<li class='sd-hypernet-missing'>⚠ " + escapeHtml(t.name) + ": not in the hypernetwork folder</li>");
            if (!t.valid) notes.push("<li class='sd-hypernet-invalid'>⚠ " + escapeHtml(t.text) + ": " + escapeHtml(t.error) + " (skipped)</li>");
        });
        if (tags.length > config.rows) {
            notes.push("<li class='sd-hypernet-more'>The prompt has " + tags.length + " hypernet tags; the panel shows the first " +
                config.rows + ". Edit the others in the prompt.</li>");
        }
        values.push(notes.length ? "<ul class='sd-hypernet-notes'>" + notes.join("") + "</ul>" : "");
        markRows(config, tags);
        return values;
    }

    function markRows(config, tags) {
        if (typeof document === "undefined" || !config.prefix) return;
        var app = typeof gradioApp === "function" ? gradioApp() : document;
        for (var i = 0; i < config.rows; i++) {
            var row = app.querySelector("#" + config.prefix + "_row_" + i);
            if (!row) continue;
            var t = tags[i];
            row.classList.toggle("sd-hypernet-row-missing", !!t && resolveName(config, t.name) === null);
            row.classList.toggle("sd-hypernet-row-invalid", !!t && !t.valid);
        }
    }

    // A file chosen in row `index`: rename its tag, add one (with the row's strength), or remove it ("None").
    function panelChoose(index, prompt, configJson, label, strength) {
        var config = readConfig(configJson);
        var name = nameOfLabel(config, label);
        var count = findTags(prompt).length;
        try {
            if (name === null) return index < count ? removeTag(prompt, index) : prompt;
            if (index < count) return renameTag(prompt, index, name);
            return addTag(prompt, name, strength === null || strength === undefined ? config["default"] : strength);
        } catch (e) {
            return prompt;
        }
    }

    // A slider of row `index` moved: rewrite that one argument of its tag (nothing when the row has no tag).
    function panelSet(index, key, prompt, configJson, value) {
        var config = readConfig(configJson);
        if (index >= findTags(prompt).length) return prompt;
        return setArgument(prompt, index, key, value, config["default"]);
    }

    // ------------------------------------------------------------------ cards
    // Card onclick: toggle <hypernet:name:weight> in the prompt of the card's tab.
    function cardClicked(event, name, weight) {
        var tab = "txt2img";
        var el = event && event.target && event.target.closest ? event.target.closest("[id^='txt2img_'],[id^='img2img_']") : null;
        if (el) tab = el.id.split("_")[0];
        var textarea = gradioApp().querySelector("#" + tab + "_prompt > label > textarea");
        if (!textarea) return;
        textarea.value = toggleTag(textarea.value, name, weight);
        updateInput(textarea);
        if (event && event.stopPropagation) event.stopPropagation();
    }

    function defaultWeight() {
        return (typeof opts !== "undefined" && typeof opts.extra_networks_default_multiplier === "number") ? opts.extra_networks_default_multiplier : 1;
    }

    var api = {
        PREFIX: PREFIX, SEPARATOR: SEPARATOR, ARGUMENT_KEYS: ARGUMENT_KEYS,
        parseNumber: parseNumber, formatNumber: formatNumber, findTags: findTags, setArgument: setArgument,
        renameTag: renameTag, removeTag: removeTag, removeTagsNamed: removeTagsNamed, addTag: addTag, toggleTag: toggleTag,
        panelValues: panelValues, panelChoose: panelChoose, panelSet: panelSet,
        cardClicked: cardClicked, defaultWeight: defaultWeight,
    };
    root.sdHypernet = api;
    if (typeof module !== "undefined" && module.exports) module.exports = api;

    // A1111's inputAccordion.js ties an InputAccordion's header checkbox to folding until the box itself is
    // clicked, so folding the panel would switch the prompt's tags off.  Its click listener is what unties them:
    // a plain Event("click") runs it without toggling the box (only a MouseEvent click toggles a checkbox).
    function untieSwitches() {
        var app = gradioApp();
        Array.prototype.forEach.call(app.querySelectorAll(".input-accordion"), function(accordion) {
            var box = accordion.visibleCheckbox;
            var value = app.querySelector("#" + accordion.id + "-checkbox input");
            if (!box || !value || !accordion.querySelector(".sd-hypernet-panel")) return;
            box.dispatchEvent(new Event("click"));
            box.checked = value.checked;
        });
    }

    // The prompt may already hold tags when the page opens (ui-config, a reload): show them in the rows.
    if (typeof onUiLoaded === "function") {
        onUiLoaded(function() {
            untieSwitches();
            ["txt2img", "img2img"].forEach(function(tab) {
                var app = gradioApp();
                var textarea = app.querySelector("#" + tab + "_prompt > label > textarea");
                if (textarea && app.querySelector(".sd-hypernet-panel") && textarea.value.indexOf(PREFIX) >= 0) updateInput(textarea);
            });
        });
    }
})(typeof window !== "undefined" ? window : globalThis);
