/**
 * The dashboard's build: Preact through Vite, everything bundled into web/dist (no CDN,
 * no runtime fetch of anything but colony's own API). Asset names carry a content hash,
 * which is what lets the server cache them for a year.
 */
import { defineConfig } from "vite";
import preact from "@preact/preset-vite";

export default defineConfig({
  root: import.meta.dirname,
  base: "/",
  plugins: [preact({ prerender: { enabled: false } })],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    // One small bundle: the whole app is a few tens of kB; splitting would only add requests.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    reportCompressedSize: true,
  },
  server: {
    // `npm run dev:web` proxies the API to a colony server on the default port.
    proxy: {
      "/api": { target: "http://127.0.0.1:7777", changeOrigin: false },
      "/login": "http://127.0.0.1:7777",
      "/metrics": "http://127.0.0.1:7777",
    },
  },
});
