// PLACEHOLDER (owned by the vsock protocol work): the default services.
export function appsStart(): void {}
export function appsPoll(): void {}
