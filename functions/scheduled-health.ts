// Placeholder: the handler body lands with the function-set work.
export const handler = async (): Promise<void> => {};
