# mcp-gate as a container: a static binary on distroless, run as non-root.
# Build: docker build -t mcp-gate .   (not built in CI; see docs/deploy.md)
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd ./cmd
COPY internal ./internal
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/mcp-gate ./cmd/mcp-gate

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mcp-gate /usr/local/bin/mcp-gate
USER nonroot:nonroot
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/mcp-gate"]
CMD ["serve", "--listen", ":8080", "--metrics-listen", ":9090", "--policy", "/etc/mcp-gate/policies.yaml"]
