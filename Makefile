# Fleet's docker targets, kept as thin aliases of `cargo xtask` (see README: Makefile → xtask).
# Make variables pass through as the environment variables xtask reads, e.g.
#   make push REGISTRY=ghcr.io/azure/fleet TAG=v1.2.3
# Only variables that are set are exported, so the catalog (docker/images.toml) keeps its defaults.

XTASK ?= cargo xtask
# Image names for scan/patch/publish (default: all in the catalog).
IMAGES ?=

XTASK_VARS := REGISTRY TAG TARGET_OS TARGET_ARCH OUTPUT_TYPE BUILDKIT_PROGRESS_TYPE BUILDX_BUILDER_NAME \
	HUB_AGENT_IMAGE_NAME HUB_AGENT_IMAGE_VERSION MEMBER_AGENT_IMAGE_NAME MEMBER_AGENT_IMAGE_VERSION \
	REFRESH_TOKEN_IMAGE_NAME REFRESH_TOKEN_IMAGE_VERSION CRD_INSTALLER_IMAGE_NAME CRD_INSTALLER_IMAGE_VERSION
$(foreach v,$(XTASK_VARS),$(if $(filter-out undefined,$(origin $(v))),$(eval export $(v))))

.PHONY: docker-build-hub-agent docker-build-member-agent docker-build-refresh-token docker-build-crd-installer \
	push docker-buildx-builder build scan patch publish doctor test

docker-build-hub-agent:
	$(XTASK) build hub-agent

docker-build-member-agent:
	$(XTASK) build member-agent

docker-build-refresh-token:
	$(XTASK) build refresh-token

docker-build-crd-installer:
	$(XTASK) build crd-installer

## Build and push every image (Fleet's `make push`).
push:
	$(XTASK) build --push $(IMAGES)

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
