/** Who is reading, as the services' visibility rules take it: a customer sees their own, an admin all. */
export interface Viewer { userId: string; isAdmin: boolean }
