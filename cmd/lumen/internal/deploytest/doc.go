// Package deploytest checks the deployment files at the repository root
// (Dockerfile, .dockerignore, compose.yaml, LICENSE) without a Docker engine:
// it parses them and asserts the properties the image and the development stack
// rely on. If hadolint is on PATH it also lints the Dockerfile.
package deploytest
