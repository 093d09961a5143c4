//go:build !(386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64 || wasm)

package shmring

// The segment layout is little-endian and this package reads it with native loads.
const _ = "shmring requires a little-endian CPU" + 0
