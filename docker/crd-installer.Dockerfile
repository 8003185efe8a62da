# crd-installer: Fleet's cmd/crdinstaller, built from the named build context `fleet` (the Fleet repository at
# the tag pinned in docker/images.toml, or a local checkout). Builder and runtime images are
# build args so a mirror can replace them.
ARG BUILDER_IMAGE=mcr.microsoft.com/oss/go/microsoft/golang:1.24.4
ARG BASE_IMAGE=mcr.microsoft.com/azurelinux/distroless/base:3.0

FROM ${BUILDER_IMAGE} AS builder
WORKDIR /workspace
COPY --from=fleet go.mod go.sum ./
RUN go mod download
COPY --from=fleet cmd/crdinstaller/ cmd/crdinstaller/
COPY --from=fleet apis/ apis/
COPY --from=fleet pkg/ pkg/
# One-platform builds get GOOS/GOARCH from xtask (as Fleet's Makefile passes them); multi-platform
# builds take BuildKit's TARGETOS/TARGETARCH for each platform.
ARG TARGETOS
ARG TARGETARCH
ARG GOOS=${TARGETOS}
ARG GOARCH=${TARGETARCH}
RUN CGO_ENABLED=1 GOEXPERIMENT=systemcrypto GOOS=${GOOS} GOARCH=${GOARCH} \
    go build -o crdinstaller ./cmd/crdinstaller

FROM ${BASE_IMAGE}
WORKDIR /
COPY --from=builder /workspace/crdinstaller /crdinstaller
# The CRDs the installer applies.
COPY --from=fleet config/crd/bases/ /workspace/config/crd/bases/
USER 65532:65532
ENTRYPOINT ["/crdinstaller"]
