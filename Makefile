# Fleet's docker targets, kept as thin aliases of `cargo xtask` (README: "Makefile → xtask").
# Make variables reach xtask as the environment variables it reads, e.g.
#   make push REGISTRY=ghcr.io/azure/fleet TAG=v1.2.3
# Only variables that are set are exported: unset ones leave docker/images.toml's defaults alone.

XTASK ?= cargo xtask
# Images for build/push/scan/patch/publish, space separated (default: every image in the catalog).
IMAGES ?=

XTASK_VARS := REGISTRY TAG TARGET_OS TARGET_ARCH OUTPUT_TYPE BUILDKIT_PROGRESS_TYPE BUILDX_BUILDER_NAME \
	HUB_AGENT_IMAGE_NAME HUB_AGENT_IMAGE_VERSION MEMBER_AGENT_IMAGE_NAME MEMBER_AGENT_IMAGE_VERSION \
	REFRESH_TOKEN_IMAGE_NAME REFRESH_TOKEN_IMAGE_VERSION CRD_INSTALLER_IMAGE_NAME CRD_INSTALLER_IMAGE_VERSION
# A plain `export VAR` would export an unset VAR as empty; export only what has an origin.
$(foreach v,$(XTASK_VARS),$(if $(filter-out undefined,$(origin $(v))),$(eval export $(v))))

.PHONY: docker-build-hub-agent docker-build-member-agent docker-build-refresh-token \
	docker-build-crd-installer push docker-buildx-builder build scan patch publish doctor test

docker-build-hub-agent:
	$(XTASK) build hub-agent

docker-build-member-agent:
	$(XTASK) build member-agent

docker-build-refresh-token:
	$(XTASK) build refresh-token

docker-build-crd-installer:
	$(XTASK) build crd-installer

# Build and push every image (Fleet's `make push`).
push:
	$(XTASK) build --push $(IMAGES)

# Create (or reuse) the buildx builder; the name defaults to Fleet's.
docker-buildx-builder: export BUILDX_BUILDER_NAME ?= img-builder
docker-buildx-builder:
	$(XTASK) builder

build:
	$(XTASK) build $(IMAGES)

scan:
	$(XTASK) scan $(IMAGES)

patch:
	$(XTASK) patch $(IMAGES)

publish:
	$(XTASK) publish $(IMAGES)

doctor:
	$(XTASK) doctor

test:
	.ci/test
