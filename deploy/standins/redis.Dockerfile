# Stand-in for the official redis:7-bookworm (deploy/standins/build.sh): Debian's
# redis-server 7.0, listening on the whole container network without protected mode, as
# the official image does; no persistence unless the command asks for it.
ARG BASE
FROM ${BASE}
RUN mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
LABEL org.clinic.standin=1
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"]
