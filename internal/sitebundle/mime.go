package sitebundle

import (
	"mime"
	"net/http"
	"path"
	"strings"
)

// webTypes are the common web types, so that a bundle does not depend on
// the building host's /etc/mime.types for them.
var webTypes = map[string]string{
	".html":        "text/html; charset=utf-8",
	".htm":         "text/html; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".mjs":         "text/javascript; charset=utf-8",
	".cjs":         "text/javascript; charset=utf-8",
	".json":        "application/json",
	".map":         "application/json",
	".webmanifest": "application/manifest+json",
	".xml":         "application/xml",
	".rss":         "application/rss+xml",
	".atom":        "application/atom+xml",
	".txt":         "text/plain; charset=utf-8",
	".md":          "text/markdown; charset=utf-8",
	".csv":         "text/csv; charset=utf-8",
	".svg":         "image/svg+xml",
	".png":         "image/png",
	".jpg":         "image/jpeg",
	".jpeg":        "image/jpeg",
	".gif":         "image/gif",
	".webp":        "image/webp",
	".avif":        "image/avif",
	".ico":         "image/vnd.microsoft.icon",
	".bmp":         "image/bmp",
	".wasm":        "application/wasm",
	".woff":        "font/woff",
	".woff2":       "font/woff2",
	".ttf":         "font/ttf",
	".otf":         "font/otf",
	".eot":         "application/vnd.ms-fontobject",
	".pdf":         "application/pdf",
	".zip":         "application/zip",
	".gz":          "application/gzip",
	".br":          "application/x-brotli",
	".zst":         "application/zstd",
	".mp4":         "video/mp4",
	".webm":        "video/webm",
	".mp3":         "audio/mpeg",
	".ogg":         "audio/ogg",
	".wav":         "audio/wav",
}

// typeOf gives a file's MIME type: the built-in table, then the standard
// library's (mime.TypeByExtension, which may read the host's mime.types:
// only extensions outside the table can depend on the building server),
// then sniffing the first 512 bytes.
func typeOf(name string, head []byte) string {
	ext := strings.ToLower(path.Ext(name))
	if t, ok := webTypes[ext]; ok {
		return t
	}
	if ext != "" {
		if t := mime.TypeByExtension(ext); t != "" {
			return t
		}
	}
	return http.DetectContentType(head)
}

// minCompressSize is the size under which no variant is made.
const minCompressSize = 256

// compressible tells whether a type is worth compressing: text, scripts,
// JSON, XML, SVG, wasm, uncompressed fonts; not images, archives or woff.
func compressible(mimeType string) bool {
	t, _, _ := strings.Cut(mimeType, ";")
	t = strings.TrimSpace(strings.ToLower(t))
	if strings.HasPrefix(t, "text/") || strings.HasSuffix(t, "+json") || strings.HasSuffix(t, "+xml") {
		return true
	}
	switch t {
	case "application/javascript", "application/x-javascript", "application/json", "application/xml",
		"application/wasm", "font/ttf", "font/otf", "font/collection", "application/x-font-ttf",
		"application/x-font-otf", "application/vnd.ms-fontobject", "image/vnd.microsoft.icon",
		"image/x-icon", "image/bmp":
		return true
	}
	return false
}
