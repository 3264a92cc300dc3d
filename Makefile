# Two commands on a fresh Debian/Ubuntu machine with Python 3.10+:
#   make sim    the main job: the node graph in MuJoCo, headless, writes runs/<timestamp>/
#   make test   the test suite (unit tests of the cores + the graph over real DDS)
# Each installs what it needs on first use (Debian packages when root, .venv, the package).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.robot_dyn-installed
# open3d/torch need libgomp1 and libusb; MuJoCo's headless renderer needs EGL/GL.
DEBS   := libgomp1 libusb-1.0-0 libegl1 libgl1 libegl-mesa0 libglx-mesa0

.PHONY: sim test bench install system-deps clean

sim: $(STAMP)
	MUJOCO_GL=egl $(BIN)/robot-dyn sim $(ARGS)

test: $(STAMP)
	MUJOCO_GL=egl $(BIN)/python -m pytest tests sim_tests $(ARGS)

bench: $(STAMP)
	$(BIN)/robot-dyn bench control --json

install: $(STAMP)

system-deps:
	@missing=$$(for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "warning: missing Debian packages ($$missing); install them with: sudo apt-get install $$missing"; \
	  fi; \
	fi

$(STAMP): setup.py | system-deps
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# CPU build of torch, pinned: any other request pulls several GB of CUDA packages.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[ros,test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
