# Stand-in for the official postgres:15-bookworm (deploy/standins/build.sh): Debian's
# postgresql-15 with the official image's interface (POSTGRES_USER, POSTGRES_PASSWORD,
# POSTGRES_DB; data in /var/lib/postgresql/data; 5432 for the network; pg_isready).
ARG BASE
FROM ${BASE}
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
RUN chmod 755 /usr/local/bin/docker-entrypoint.sh && mkdir -p "$PGDATA" /var/run/postgresql \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
VOLUME /var/lib/postgresql/data
EXPOSE 5432
LABEL org.clinic.standin=1
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
