# crd-installer: Fleet's cmd/crdinstaller. Fleet's source is the named build context `fleet`: its git
# repository at the tag pinned in docker/images.toml (`--build-context fleet=DIR` overrides).
ARG BUILDER_IMAGE=mcr.microsoft.com/oss/go/microsoft/golang:1.26.4
ARG BASE_IMAGE=mcr.microsoft.com/azurelinux/distroless/base:3.0

FROM ${BUILDER_IMAGE} AS builder
WORKDIR /workspace
COPY --from=fleet go.mod go.sum ./
RUN go mod download
COPY --from=fleet cmd/crdinstaller/ cmd/crdinstaller/
COPY --from=fleet pkg/ pkg/
# cgo: no cross-compiling, the builder runs on the target platform. One-platform builds get
# GOOS/GOARCH as build args (as in Fleet's Makefile); multi-platform builds use TARGETARCH.
ARG TARGETARCH
ARG GOOS=linux
ARG GOARCH=${TARGETARCH}
RUN CGO_ENABLED=1 GOEXPERIMENT=systemcrypto GOOS=${GOOS} GOARCH=${GOARCH} \
    go build -o crdinstaller ./cmd/crdinstaller

FROM ${BASE_IMAGE}
WORKDIR /
COPY --from=builder /workspace/crdinstaller /crdinstaller
# The installer reads the CRDs from this fixed path.
COPY --from=fleet config/crd/bases/ /workspace/config/crd/bases/
USER 65532:65532
ENTRYPOINT ["/crdinstaller"]
