// Checks deploy/Dockerfile without a Docker engine (none runs on the
// project's test machines): what an image build would find out late, found
// here from the same Debian 12 archive the image is built from.
//
//   cd tests && npm run test:deploy     (after the build: it reads build/bin)
//
// - Both stages' apt-get lines name packages that exist in Debian 12 and
//   whose dependencies resolve (apt-get's own simulation, -s).
// - The runtime stage installs the package of every shared library the
//   binaries load (their ELF NEEDED entries, mapped to packages by dpkg -S),
//   and the libuv plugin libwebsockets dlopen()s at start, without which
//   the gateway cannot create its context.
// - The build stage's CMake option (-DWSGW_TESTS=OFF) is one CMakeLists.txt
//   defines, so the build stage configures as written.
// - The environment the image sets (WSGW_LISTEN) is one wsgw reads.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync, existsSync, realpathSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..");
const dockerfile = readFileSync(join(repo, "deploy", "Dockerfile"), "utf8");
const binDir = process.env.WSGW_BIN_DIR || join(repo, "build", "bin");

// Packages every Debian image has (Essential: yes, or the C runtime).
const BASE = new Set(["libc6", "libgcc-s1"]);

/** The Dockerfile cut into stages: [{ from, text }] with continuations joined. */
function stages(text) {
  const joined = text.replace(/\\\n/g, " ");
  const out = [];
  for (const line of joined.split("\n")) {
    const m = /^FROM\s+(\S+)/.exec(line);
    if (m) out.push({ from: m[1], text: "" });
    else if (out.length) out[out.length - 1].text += line + "\n";
  }
  return out;
}

/** The packages of every `apt-get install` in a stage. */
function aptPackages(stageText) {
  const pkgs = [];
  for (const m of stageText.matchAll(/apt-get install ([^&\n]*)/g)) {
    for (const word of m[1].trim().split(/\s+/)) if (!word.startsWith("-")) pkgs.push(word);
  }
  return pkgs;
}

function sh(cmd, args) {
  return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** The Debian package that ships a file (merged /usr: try both spellings). */
function packageOf(path) {
  for (const p of [path, realpathSync(path), path.replace(/^\/lib\//, "/usr/lib/")]) {
    const r = spawnSync("dpkg", ["-S", p], { encoding: "utf8" });
    if (r.status === 0) return r.stdout.split(":")[0].trim();
  }
  throw new Error(`no package ships ${path}`);
}

/** soname -> path, from the dynamic linker's cache. */
function ldCache() {
  const map = new Map();
  for (const line of sh("ldconfig", ["-p"]).split("\n")) {
    const m = /^\s*(\S+) \(libc6,x86-64[^)]*\) => (\S+)/.exec(line);
    if (m && !map.has(m[1])) map.set(m[1], m[2]);
  }
  return map;
}

function needed(binary) {
  return sh("objdump", ["-p", binary])
    .split("\n")
    .map((l) => /^\s*NEEDED\s+(\S+)/.exec(l))
    .filter(Boolean)
    .map((m) => m[1]);
}

describe("deploy/Dockerfile", () => {
  const [build, runtime] = stages(dockerfile);

  test("has a build stage on Debian 12 and a Debian 12 slim runtime", () => {
    assert.equal(build.from, "debian:12");
    assert.equal(runtime.from, "debian:12-slim");
    assert.match(dockerfile, /^COPY --from=build \/build\/bin\/wsgw \/build\/bin\/wsgw-bench /m);
  });

  for (const [name, stage] of [["build", build], ["runtime", runtime]]) {
    test(`the ${name} stage's packages exist in Debian 12 and install together`, () => {
      const pkgs = aptPackages(stage.text);
      assert.ok(pkgs.length > 3, `packages found: ${pkgs}`);
      // -s: simulate, as any user; it resolves every dependency or fails.
      const r = spawnSync("apt-get", ["-s", "install", "--no-install-recommends", ...pkgs], { encoding: "utf8" });
      assert.equal(r.status, 0, `apt-get -s install ${pkgs.join(" ")}:\n${r.stderr}`);
    });
  }

  test("the runtime stage installs every library the binaries load, and the libuv plugin", () => {
    const runtimePkgs = new Set(aptPackages(runtime.text));
    const cache = ldCache();
    for (const bin of ["wsgw", "wsgw-bench"]) {
      const path = join(binDir, bin);
      assert.ok(existsSync(path), `${path} is missing: build first (cmake --build build)`);
      for (const soname of needed(path)) {
        assert.ok(cache.has(soname), `${bin} needs ${soname}, which ldconfig does not know`);
        const pkg = packageOf(cache.get(soname)).replace(/:.*$/, "");
        assert.ok(BASE.has(pkg) || runtimePkgs.has(pkg),
          `${bin} needs ${soname} from ${pkg}, which the runtime stage does not install`);
      }
    }
    // dlopen()ed, so no NEEDED entry names it (platform notes: without it
    // lws_create_context fails with "unable to load evlib plugin").
    const plugin = cache.get("libwebsockets-evlib_uv.so");
    assert.ok(plugin, "the libuv plugin of libwebsockets is installed here");
    assert.ok(runtimePkgs.has(packageOf(plugin)), "the runtime stage installs the libuv plugin's package");
  });

  test("the build stage's CMake option exists and the image's settings are ones wsgw reads", () => {
    const cmake = readFileSync(join(repo, "CMakeLists.txt"), "utf8");
    for (const m of build.text.matchAll(/-D(WSGW_\w+)=/g)) {
      assert.match(cmake, new RegExp(`option\\(${m[1]}\\b`), `CMakeLists.txt defines ${m[1]}`);
    }
    const help = sh(join(binDir, "wsgw"), ["--help"]);
    for (const m of runtime.text.matchAll(/^ENV (WSGW_\w+)=/gm)) {
      assert.ok(help.includes(m[1]), `wsgw --help documents ${m[1]}`);
    }
    assert.match(runtime.text, /^ENTRYPOINT \["wsgw"\]/m);
  });
});
