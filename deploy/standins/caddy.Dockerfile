# Stand-in for the official caddy:2 (deploy/standins/build.sh): Debian's caddy 2.6, with
# the official image's interface (config /etc/caddy/Caddyfile, state in /data, 80 and 443).
ARG BASE
FROM ${BASE}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends caddy >/dev/null \
    && rm -rf /var/lib/apt/lists/* && mkdir -p /data /config
ENV XDG_CONFIG_HOME=/config XDG_DATA_HOME=/data
EXPOSE 80 443
LABEL org.clinic.standin=1
CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
