# poster search, CPU-only: the CLI, and `serve` for the web page (docker-compose.yml, profile "web").
# The package without its `train` extra: no TensorFlow (only train-year needs it) and no CUDA
# libraries; every version as constraints.txt pins it. Runs on any x86-64 or arm64 machine with Docker.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Dependencies first (pyproject.toml's list, at constraints.txt's versions): a code change does not reinstall them.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > dependencies.txt \
    && pip install -c constraints.txt -r dependencies.txt

COPY . .
RUN pip install --no-deps .
# Not root: the server only reads the store (over HTTP) and the mounted posters.
RUN useradd --create-home --uid 1000 app && mkdir -p /models && chown app /app /models
USER app

EXPOSE 8000
ENTRYPOINT ["poster-search"]
# Inside the container the server must listen on all interfaces; docker-compose.yml publishes the
# port on the host's 127.0.0.1 only.
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
