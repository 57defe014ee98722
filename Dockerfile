# CPU image: `docker build -t trainer .` then `docker run --rm -v $PWD/runs:/app/runs trainer fit configs/digits.yaml`
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dataset-fashion-mnist \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY trainer ./trainer
RUN pip install --no-cache-dir .
COPY configs ./configs

ENV TF_CPP_MIN_LOG_LEVEL=3
ENTRYPOINT ["trainer"]
CMD ["--help"]
